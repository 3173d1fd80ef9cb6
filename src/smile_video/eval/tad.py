"""Sliding-window features for temporal action localisation (paper appendix B, Table 10: ActionFormer trained on
THUMOS-14 and ActivityNet-1.3 with OpenTAD, on features of the frozen pretrained encoder).

Per video (every frame decoded at its native frame rate): windows of W = model.num_frames frames (16), the frames of
a window ``tad.frame_stride`` apart (1: consecutive), window starts ``tad.stride`` frames apart (4 for THUMOS-14, as
ActionFormer's I3D features: ``feat_stride 4, num_frames 16``). Row t of the array is the window starting at frame
``t * stride``; windows run while they fit (``start + span <= frames``), a video shorter than one window gives one
window with its last frame repeated. A window's feature is the mean of the encoder's output tokens after its final
norm (a finetuned classifier: mean, then ``fc_norm``), frames short-side resized to model.img_size and centre
cropped, ImageNet-normalised: C = the encoder width (768 for ViT-B, 384 for ViT-S).

Output, in the layout ActionFormer and OpenTAD read (one array per video, named by the video id = the file's stem)::

    OUT/<video id>.npy        (T, C) float32 (or float16), T = floor((frames - span) / stride) + 1
    OUT/features.json         per video: frames, fps, windows, and the window / stride / dim used

With ActionFormer / OpenTAD set ``feat_stride = stride``, ``num_frames = 16``, ``input_dim = C``, and the video's
fps from features.json (or the annotations); window t is centred at frame ``t * stride + span / 2``. ActivityNet
pipelines resample each video's features to a fixed length themselves (OpenTAD: ``resize_length 128``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..config.generalisation import TadJob
from ..data.normalize import normalize

__all__ = ["tad_window_starts", "window_features", "extract_video", "run_tad_features"]


def tad_window_starts(length: int, span: int, stride: int) -> list[int]:
    """Starts of the windows of a video of `length` frames: 0, stride, 2 stride, ... while start + span <= length;
    [0] when the video is shorter than one window."""
    if length < 1 or span < 1 or stride < 1:
        raise ValueError(f"tad_window_starts: length, span and stride must be >= 1, got {length}, {span}, {stride}")
    return list(range(0, length - span + 1, stride)) or [0]


@torch.inference_mode()
def window_features(encoder: nn.Module, frames: Tensor, starts: list[int], window: int, frame_stride: int,
                    batch_size: int, device: torch.device | str) -> Tensor:
    """frames: (L, 3, S, S) uint8 (already resized and cropped), starts relative to frames[0] -> (len(starts), C)
    float32: per window, the pooled features of frames start + frame_stride * (0 .. window - 1) (clamped to L - 1)."""
    from ..models import encode

    offsets = torch.arange(window) * frame_stride  # (W,)
    out = []
    for i in range(0, len(starts), batch_size):
        idx = (torch.tensor(starts[i:i + batch_size])[:, None] + offsets).clamp(max=frames.shape[0] - 1)  # (B, W)
        clips = frames[idx].permute(0, 2, 1, 3, 4)  # (B, 3, W, S, S)
        pooled, _ = encode(encoder, normalize(clips.to(device)))  # (B, C)
        out.append(pooled.float().cpu())
    return torch.cat(out)


def extract_video(encoder: nn.Module, path: str, size: int, window: int, stride: int, frame_stride: int,
                  batch_size: int, device: torch.device | str) -> tuple[Tensor, dict[str, Any]]:
    """One video's (T, C) window features and its facts (frames, fps, windows). Frames are decoded batch by batch
    (the frames the batch's windows span), so memory holds about batch_size * stride + span frames."""
    from ..data.decode import open_video
    from ..data.transforms import spatial_views

    span = (window - 1) * frame_stride + 1
    feats = []
    with open_video(path) as reader:
        length, fps = reader.num_frames, float(reader.fps)
        starts = tad_window_starts(length, span, stride)
        for i in range(0, len(starts), batch_size):
            group = starts[i:i + batch_size]
            first, last = group[0], min(group[-1] + span, length)  # frames [first, last)
            raw = reader.get_frames(list(range(first, last)))  # (n, H, W, 3) uint8
            clip = spatial_views(raw.permute(3, 0, 1, 2), size, 1)[0]  # (3, n, S, S)
            frames = clip.permute(1, 0, 2, 3)  # (n, 3, S, S)
            feats.append(window_features(encoder, frames, [s - first for s in group], window, frame_stride,
                                         batch_size, device))
    return torch.cat(feats), {"frames": length, "fps": fps, "windows": len(starts)}


def run_tad_features(cfg: TadJob, checkpoint: str | None) -> dict[str, Any]:
    """Write one .npy per video of tad.list and features.json; returns the features.json content."""
    from tqdm import tqdm

    from ..data.lists import read_video_list
    from ..devices import resolve_device
    from ..runlog import RunDir, atomic_write_bytes, atomic_write_text
    from .features import load_frozen_encoder

    t = cfg.tad
    if not t.list:
        raise ValueError("tad.list is not set (tad.list=PATH: the videos to extract)")
    entries = read_video_list(t.list, data_root=t.data_root)
    ids = [Path(e.path).stem for e in entries]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"{t.list}: video ids (file stems) must be unique, {dup[:5]} repeat")
    device = resolve_device(t.device)
    encoder, cfg.model, identity = load_frozen_encoder(checkpoint, cfg.model)
    encoder = encoder.to(device)
    run = RunDir(cfg.run.out_dir, quiet=cfg.run.quiet)
    run.save_config(cfg)
    out = Path(t.out_dir) if t.out_dir else run.file("features")
    out.mkdir(parents=True, exist_ok=True)
    window, dtype = cfg.model.num_frames, np.float32 if t.dtype == "float32" else np.float16
    meta_path = out / "features.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta.update({"encoder": checkpoint or "random init", "identity": identity, "window": window,
                 "stride": t.stride, "frame_stride": t.frame_stride, "img_size": cfg.model.img_size,
                 "dim": cfg.model.embed_dim, "dtype": t.dtype})
    videos = meta.setdefault("videos", {})
    for vid, entry in tqdm(list(zip(ids, entries)), desc="tad-features", disable=cfg.run.quiet, file=sys.stderr):
        target = out / f"{vid}.npy"
        if t.skip_existing and target.is_file() and vid in videos:
            continue
        feats, facts = extract_video(encoder, entry.path, cfg.model.img_size, window, t.stride, t.frame_stride,
                                     t.batch_size, device)
        meta["dim"] = int(feats.shape[1])
        import io

        buf = io.BytesIO()
        np.save(buf, feats.numpy().astype(dtype))
        atomic_write_bytes(target, buf.getvalue())
        videos[vid] = facts
        atomic_write_text(meta_path, json.dumps(meta, indent=1))  # after each video: a restart skips the done ones
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    run.echo(f"wrote {len(videos)} feature arrays ({meta['dim']} dims, window {window}, stride {t.stride}) to {out}")
    return meta
