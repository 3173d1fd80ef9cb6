"""`smile vos`: unsupervised video object segmentation of a frozen encoder over a DAVIS / YouTube-VOS split
(`eval.vos` states the protocol). Writes config.yaml, metrics.jsonl (one record per video) and results.json."""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import Tensor, nn

from ..config.generalisation import VosJob
from ..data.normalize import normalize
from ..devices import resolve_device
from ..runlog import RunDir, atomic_write_text
from .features import load_frozen_encoder
from .vos import cluster_video

__all__ = ["window_starts", "video_patch_features", "run_vos"]


def window_starts(length: int, window: int) -> list[int]:
    """Starts of back-to-back windows of `window` frames covering `length` frames; the last one is moved back to
    end at the last frame (it overlaps its predecessor) and a video shorter than a window has one start, 0."""
    if length < 1 or window < 1:
        raise ValueError(f"window_starts: length and window must be >= 1, got {length}, {window}")
    starts = list(range(0, max(length - window, 0) + 1, window))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


@torch.inference_mode()
def video_patch_features(encoder: nn.Module, frames: Tensor, num_frames: int, tubelet: int, batch_size: int = 4,
                         device: torch.device | str = "cpu") -> Tensor:
    """Space-time patch features of every frame of a video.

    frames: (L, 3, S, S) uint8 (S = the encoder's img_size). The video is cut into clips of `num_frames`
    consecutive frames (`window_starts`; a video shorter than a clip repeats its last frame); frame i of a clip gets
    the tokens of its tubelet (i // tubelet), after the encoder's final norm. Returns (L, h, w, C) float32 (CPU).
    """
    from ..models import encode

    length = frames.shape[0]
    if length < num_frames:  # pad by repeating the last frame
        frames = torch.cat([frames, frames[-1:].expand(num_frames - length, *frames.shape[1:])])
    starts = window_starts(frames.shape[0], num_frames)
    out: Tensor | None = None
    for i in range(0, len(starts), batch_size):
        group = starts[i:i + batch_size]
        clips = torch.stack([frames[s:s + num_frames] for s in group]).permute(0, 2, 1, 3, 4)  # (B, 3, T, S, S)
        _, tokens = encode(encoder, normalize(clips.to(device)), per_token=True)  # (B, N, C)
        assert tokens is not None
        b, n, c = tokens.shape
        t = num_frames // tubelet
        side = int(round((n // t) ** 0.5))
        grid = tokens.float().view(b, t, side, side, c).repeat_interleave(tubelet, dim=1).cpu()  # (B, T, h, w, C)
        if out is None:
            out = torch.zeros(frames.shape[0], side, side, c)
        for s, feats in zip(group, grid):
            out[s:s + num_frames] = feats  # a later (overlapping) clip overwrites: the last clip covers the tail
    assert out is not None
    return out[:length]


def run_vos(cfg: VosJob, checkpoint: str | None) -> dict[str, Any]:
    """Cluster every video of the split; returns results.json: per-video and mean mIoU per setting."""
    from ..data.vos_layout import load_frames, load_masks, read_vos_dataset

    v = cfg.vos
    if not v.root:
        raise ValueError("vos.root is not set (vos.root=PATH: a DAVIS-2017 or YouTube-VOS folder)")
    videos = read_vos_dataset(v.root, v.layout, v.split, v.resolution)  # errors before any work
    if v.max_videos:
        videos = videos[:v.max_videos]
    device = resolve_device(v.device)
    encoder, cfg.model, identity = load_frozen_encoder(checkpoint, cfg.model, seed=v.seed)
    encoder = encoder.to(device)
    m = cfg.model
    size = v.mask_size or m.img_size
    run = RunDir(cfg.run.out_dir, quiet=cfg.run.quiet)
    run.save_config(cfg)
    per_video: list[dict[str, Any]] = []
    for video in run.progress(videos, total=len(videos), desc="vos"):
        frames = video.frames[:v.max_frames] if v.max_frames else video.frames
        scored = sorted(i for i in video.masks if i < len(frames))
        if not scored:
            raise ValueError(f"video {video.name!r}: none of its first {len(frames)} frames has a mask "
                             "(raise vos.max_frames)")
        feats = video_patch_features(encoder, load_frames(frames, m.img_size), m.num_frames, m.tubelet_size,
                                     v.batch_size, device)  # (L, h, w, C)
        masks = load_masks([video.masks[i] for i in scored], size)  # (F, size, size)
        g = torch.Generator().manual_seed(v.seed)
        try:
            res = cluster_video(feats[scored], masks, g, v.overcluster_k, v.matching, v.normalize, v.kmeans_inits,
                                v.kmeans_iters)
        except ValueError as e:
            raise ValueError(f"video {video.name!r}: {e}") from None
        record = {"video": video.name, "frames": len(frames), "scored_frames": len(scored), **res}
        run.log({"kind": "video", **record})
        per_video.append(record)
    settings = [s for s in ("clustering", "overclustering") if s in per_video[0]]
    summary = {s: 100.0 * sum(r[s]["miou"] for r in per_video) / len(per_video) for s in settings}
    results = {"encoder": checkpoint or f"random init (seed {v.seed})", "identity": identity, "layout": v.layout,
               "split": v.split, "videos": len(per_video), "matching": v.matching, "miou": summary,
               "per_video": per_video}
    atomic_write_text(run.file("results.json"), json.dumps(results, indent=1))
    run.echo("  ".join(f"{s}: mIoU {summary[s]:.1f}" for s in settings) + f" ({len(per_video)} videos)")
    return results
