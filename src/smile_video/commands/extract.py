"""`smile extract CKPT --data LIST --out FILE`: encoder features for every video of a list.

The output is one safetensors file: ``features`` (M, C) float32 pooled features (a classifier pools as it was
trained: mean, then ``fc_norm``; a pretraining encoder: mean of its normed tokens), ``labels`` (M,) and ``indices``
(M,) the entry's line in the list; with ``--per-token`` also ``tokens`` (M, N, C) in (t', h', w') order. The
metadata holds ``paths`` (JSON list), ``skipped`` (files that could not be decoded), ``grid``, ``model`` (config
JSON) and ``checkpoint``. With several views (``--views CLIPS CROPS``) an entry's views are averaged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
from torch import Tensor

from .export import add_shape_arguments, config_from_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="any checkpoint format `smile export` reads")
    parser.add_argument("--data", required=True, metavar="LIST", help="video list (any format of docs/data.md)")
    parser.add_argument("--out", required=True, metavar="FILE", help="output .safetensors file")
    parser.add_argument("--data-root", default="", help="prefix for relative paths in the list")
    parser.add_argument("--per-token", action="store_true", help="also store every token's feature (M, N, C)")
    parser.add_argument("--sampling-rate", type=int, default=4, help="temporal stride between frames (default 4)")
    parser.add_argument("--views", type=int, nargs=2, default=(1, 1), metavar=("CLIPS", "CROPS"),
                        help="test views per video, averaged (default 1 1: one centre clip)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_shape_arguments(parser)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


@torch.inference_mode()
def _encode_batches(encoder: torch.nn.Module, loader, device: torch.device, per_token: bool,
                    progress) -> tuple[dict[int, Tensor], dict[int, Tensor], dict[int, int], dict[int, int], list]:
    """Sum each entry's view features; returns (pooled sums, token sums, view counts, labels, skipped)."""
    from ..data.normalize import normalize
    from ..models import encode

    pooled_sum: dict[int, Tensor] = {}
    token_sum: dict[int, Tensor] = {}
    counts: dict[int, int] = {}
    labels: dict[int, int] = {}
    skipped: list[str] = []
    for batch in progress(loader):
        x = normalize(batch["video"].to(device))  # (B, 3, T, H, W)
        pooled, tokens = encode(encoder, x, per_token=per_token)  # (B, C), (B, N, C) | None
        skipped += batch["skipped"]
        for j, i in enumerate(batch["index"].tolist()):
            pooled_sum[i] = pooled_sum.get(i, 0) + pooled[j].float().cpu()
            if tokens is not None:
                token_sum[i] = token_sum.get(i, 0) + tokens[j].float().cpu()
            counts[i] = counts.get(i, 0) + 1
            labels[i] = int(batch["label"][j])
    return pooled_sum, token_sum, counts, labels, skipped


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import save as safetensors_bytes
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from ..checkpoint import load_encoder
    from ..data.dataset import VideoClipDataset, collate
    from ..data.lists import read_video_list, require_files
    from ..runlog import atomic_write_bytes

    entries = read_video_list(args.data, data_root=args.data_root)
    require_files(entries, args.data, args.data_root, "--data-root")  # before any work
    device = _device(args.device)
    encoder, cfg = load_encoder(args.checkpoint, cfg=config_from_arguments(args))
    encoder = encoder.to(device).eval().requires_grad_(False)
    dataset = VideoClipDataset(entries, num_frames=cfg.num_frames, sampling_rate=args.sampling_rate,
                               size=cfg.img_size, train=False, test_views=tuple(args.views))
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.num_workers,
                        collate_fn=collate)

    def progress(it):
        return tqdm(it, total=len(loader), desc="extract", disable=args.quiet, file=sys.stderr, leave=False)

    pooled, tokens, counts, labels, skipped = _encode_batches(encoder, loader, device, args.per_token, progress)
    if not pooled:
        raise ValueError(f"{args.data}: no video could be decoded; see `smile data-check`")
    order = sorted(pooled)
    out: dict[str, Tensor] = {
        "features": torch.stack([pooled[i] / counts[i] for i in order]),  # (M, C)
        "labels": torch.tensor([labels[i] for i in order], dtype=torch.long),  # (M,)
        "indices": torch.tensor(order, dtype=torch.long),  # (M,)
    }
    if args.per_token:
        out["tokens"] = torch.stack([tokens[i] / counts[i] for i in order])  # (M, N, C)
    meta = {"paths": json.dumps([entries[i].path for i in order]), "skipped": json.dumps(sorted(set(skipped))),
            "grid": json.dumps(list(cfg.grid)), "model": json.dumps(dataclasses.asdict(cfg)),
            "checkpoint": str(args.checkpoint), "format": "pt"}
    atomic_write_bytes(Path(args.out), safetensors_bytes({k: v.contiguous() for k, v in out.items()}, metadata=meta))
    if not args.quiet:
        missing = len(entries) - len(order)
        print(f"wrote {len(order)} x {out['features'].shape[1]} features to {args.out}"
              + (f" ({missing} entries could not be decoded)" if missing else ""), file=sys.stderr)
    return 0
