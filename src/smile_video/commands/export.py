"""`smile export FORMAT CKPT OUT`: convert a checkpoint of any supported format.

``hf``: a Hugging Face transformers directory (``VideoMAEModel``, or ``VideoMAEForVideoClassification`` for a
classifier). ``smile``: our own format (safetensors + config.json), e.g. to convert an official ``.pth`` once.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..config import ModelConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=["hf", "smile"], help="hf: Hugging Face VideoMAE directory; smile: ours")
    parser.add_argument("checkpoint", metavar="CKPT",
                        help="our checkpoint or run directory, an official SMILE/VideoMAE .pth, a .safetensors file "
                             "or a Hugging Face VideoMAE directory")
    parser.add_argument("out", metavar="OUT", help="output directory")
    add_shape_arguments(parser)
    parser.add_argument("--labels", metavar="FILE", default=None,
                        help="class names, one per line, for a classifier's id2label (hf only)")


def add_shape_arguments(parser: argparse.ArgumentParser) -> None:
    """What an official .pth cannot tell: shared with `smile extract`."""
    g = parser.add_argument_group("for official .pth files (ignored when the checkpoint has a config)")
    g.add_argument("--num-frames", type=int, default=None, help="input frames (default: 16 for ViT-S/B/L)")
    g.add_argument("--img-size", type=int, default=None, help="input size in pixels (default: 224 for ViT-S/B/L)")
    g.add_argument("--num-heads", type=int, default=None, help="attention heads (default: by width, e.g. 12 for 768)")


def config_from_arguments(args: argparse.Namespace) -> ModelConfig | None:
    """The checkpoint's inferred config with --num-frames / --img-size / --num-heads applied, or None."""
    overrides = {k: v for k, v in (("num_frames", args.num_frames), ("img_size", args.img_size),
                                   ("num_heads", args.num_heads)) if v is not None}
    if not overrides:
        return None
    from ..checkpoint import read_config

    return dataclasses.replace(read_config(args.checkpoint), **overrides)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load_model, save_hf, save_model

    model, cfg, report = load_model(args.checkpoint, cfg=config_from_arguments(args))
    out = Path(args.out)
    if args.format == "hf":
        labels = None
        if args.labels:
            labels = [ln.strip() for ln in Path(args.labels).read_text().splitlines() if ln.strip()]
        arch = save_hf(model, cfg, out, labels=labels)
        print(f"wrote {arch} to {out} (load with transformers.{arch}.from_pretrained({str(out)!r}))", file=sys.stderr)
    else:
        save_model(model, cfg, out, meta={"converted_from": str(args.checkpoint), "layout": report.layout})
        print(f"wrote {type(model).__name__} to {out}", file=sys.stderr)
    return 0
