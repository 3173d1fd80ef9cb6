"""`smile diagnose`: is an encoder's output collapsed (one constant vector), low-rank, or static over time?

Encodes one centre clip of up to ``--max-clips`` videos of a list and prints `eval.diagnostics.feature_stats`, and on
up to 32 of those clips each block's attention entropy (`eval.diagnostics.attention_entropy`), the residual stream's
constant / per-clip / per-token shares after each block (`residual_stream`) and what the tubelet embedding's filters
respond to (`patch_filter_stats`); with
``--compare-random`` a random init of the same config is measured beside it. ``--out DIR`` writes
``DIR/diagnose.json``. The numbers are explained in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ModelConfig, load_config
from .extract import _device
from .probe import encoder_and_overrides


@dataclass
class DiagnoseJob:
    """What `smile diagnose` configures: `model` describes the encoder when the checkpoint does not."""

    model: ModelConfig = field(default_factory=ModelConfig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", default=None, metavar="CKPT",
                        help="encoder checkpoint (any format smile reads); omit with --random-init")
    parser.add_argument("--random-init", action="store_true",
                        help="diagnose a randomly initialised encoder described by model.* (seed: --seed)")
    parser.add_argument("--compare-random", action="store_true",
                        help="also diagnose a random init of the checkpoint's config, side by side")
    parser.add_argument("--list", required=True, metavar="LIST", help="video list (any format of docs/data.md)")
    parser.add_argument("--data-root", default="", help="prefix for relative paths in the list")
    parser.add_argument("--max-clips", type=int, default=64,
                        help="videos to encode, one centre clip each (a seeded subset of a longer list; default 64)")
    parser.add_argument("--sampling-rate", type=int, default=2, help="temporal stride between frames (default 2)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="subset of the list and random init (default 0)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--out", default=None, metavar="DIR", help="write DIR/diagnose.json")
    parser.add_argument("-c", "--config", action="append", default=[], metavar="FILE",
                        help="YAML file with a model section (repeatable; later files win)")
    parser.add_argument("overrides", nargs="*", metavar="model.key=value",
                        help="the encoder's config where the checkpoint does not give it, e.g. model.preset=vit_b")


def _format(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return f"{value:.3g}" if abs(value) >= 1e4 or (value != 0 and abs(value) < 1e-3) else f"{value:.3f}"


def format_table(results: dict[str, dict[str, float]]) -> str:
    """{encoder name: feature_stats} -> a plain-text table, one row per statistic, one column per encoder."""
    from ..eval.diagnostics import STAT_KEYS

    names = list(results)
    width = max(len(k) for k in STAT_KEYS)
    cols = [max(10, len(n)) for n in names]
    lines = [f"{'':{width}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, cols))]
    for key in STAT_KEYS:
        lines.append(f"{key:{width}}  " + "  ".join(f"{_format(results[n][key]):>{w}}" for n, w in zip(names, cols)))
    return "\n".join(lines)


def _inside(encoders: dict, cfg: ModelConfig, args: argparse.Namespace, device) -> dict[str, dict]:
    """Per encoder, what happens inside it on the first (up to 32) clips of the same subset of the list: each block's
    `attention_entropy`, the `residual_stream` after the embedding and each block, and the embedding's
    `patch_filter_stats`."""
    import torch

    from ..data.normalize import normalize
    from ..eval.diagnostics import encoder_inside, patch_filter_stats
    from ..eval.features import clip_loader

    loader = clip_loader(cfg, args.list, args.data_root, args.sampling_rate, batch_size=min(32, args.max_clips),
                         max_items=args.max_clips, seed=args.seed)
    x = normalize(next(iter(loader))["video"].to(device))  # (b, 3, T, H, W)
    out = {}
    with torch.inference_mode():
        for name, (enc, _) in encoders.items():
            enc = enc.to(device).eval()
            out[name] = {**encoder_inside(enc, x), "patch_filters": patch_filter_stats(enc.patch_embed.proj.weight)}
    return out


def format_inside(inside: dict[str, dict], num_tokens: int) -> str:
    """`_inside`'s numbers as text: attention entropy, embedding filters and residual stream, one block per encoder."""
    lines = [f"attention entropy per block (nats; uniform attention = ln N = {math.log(num_tokens):.2f}, "
             "near 0 = collapsed):"]
    lines += [f"  {name}: " + " ".join(f"{e:.2f}" for e in d["attention_entropy"]) for name, d in inside.items()]
    lines.append("tubelet embedding filters (share of their energy that sees a flat patch's colour / grey level / a "
                 "change between the tubelet's frames; random init ~1/(t p p) / ~1/(3 t p p) / ~(t-1)/t):")
    for name, d in inside.items():
        f = d["patch_filters"]
        lines.append(f"  {name}: flat {f['flat_share']:.3f}  grey {f['grey_share']:.3f}  "
                     f"change {f['change_share']:.3f}")
    lines.append("residual stream after the embedding and each block (rms; shares of the squared norm: constant "
                 "vector / per-clip offset / per-token):")
    for name, d in inside.items():
        lines.append(f"  {name}: " + "  ".join(
            f"{s['rms']:.2f} ({s['constant_share']:.2f}/{s['clip_share']:.2f}/{s['token_share']:.2f})"
            for s in d["residual_stream"]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    ckpt, _ = encoder_and_overrides(args)  # (its run.out_dir override is for probe-style verbs; unused here)
    if args.compare_random and ckpt is None:
        raise ValueError("--compare-random compares a checkpoint with a random init; give a checkpoint (CKPT)")
    if args.max_clips < 1 or args.sampling_rate < 1 or args.batch_size < 1:
        raise ValueError(f"--max-clips, --sampling-rate and --batch-size must be >= 1, got {args.max_clips}, "
                         f"{args.sampling_rate}, {args.batch_size}")
    if ckpt is not None and not Path(ckpt).exists():
        raise FileNotFoundError(f"checkpoint {ckpt!r} does not exist")
    if not Path(args.list).is_file():
        raise FileNotFoundError(f"list {args.list!r} does not exist")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out!r} exists and is not a directory")
    model_cfg = load_config(DiagnoseJob, args.config, args.overrides).model  # config errors before any work
    device = _device(args.device)

    from ..eval.diagnostics import feature_stats
    from ..eval.features import list_tokens, load_frozen_encoder
    from ..runlog import atomic_write_text

    encoder, cfg, identity = load_frozen_encoder(ckpt, model_cfg, seed=args.seed)
    encoders = {("checkpoint" if ckpt else "random init"): (encoder, identity)}
    if args.compare_random:
        random_encoder, _, random_identity = load_frozen_encoder(None, cfg, seed=args.seed)
        encoders["random init"] = (random_encoder, random_identity)
    results: dict[str, dict[str, float]] = {}
    clips = 0
    for name, (enc, _) in encoders.items():
        tokens, _labels = list_tokens(enc, cfg, args.list, args.data_root, args.sampling_rate, args.max_clips,
                                      args.batch_size, args.seed, device)  # (B, N, C)
        results[name] = feature_stats(tokens, cfg.grid)
        clips = tokens.shape[0]
    inside = _inside(encoders, cfg, args, device)
    print(f"{clips} clips of {args.list}, grid (T', H', W') = {cfg.grid}, C = {cfg.embed_dim}")
    print(format_table(results))
    print(format_inside(inside, cfg.num_tokens))
    if args.out:
        record = {"checkpoint": ckpt, "list": args.list, "data_root": args.data_root, "clips": clips,
                  "sampling_rate": args.sampling_rate, "seed": args.seed, "grid": list(cfg.grid),
                  "model": dataclasses.asdict(cfg),
                  "encoders": {name: {"identity": ident,  # NaN (undefined) is written as null
                                      "stats": {k: None if math.isnan(v) else v for k, v in results[name].items()},
                                      **inside[name]}
                               for name, (_, ident) in encoders.items()}}
        path = Path(args.out) / "diagnose.json"
        atomic_write_text(path, json.dumps(record, indent=1))
        print(f"wrote {path}", file=sys.stderr)
    return 0
