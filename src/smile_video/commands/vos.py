"""`smile vos`: unsupervised video object segmentation of a frozen encoder (paper Table 10, SIGMA's protocol)."""

from __future__ import annotations

import argparse
import sys

from ..config.generalisation import VosJob
from ._config import resolve
from .probe import add_encoder_arguments, encoder_and_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_encoder_arguments(parser, "runs/vos")
    parser.add_argument("--generate", default=None, metavar="DIR",
                        help="write a small DAVIS-2017-layout set with exact masks (motion compositor) to DIR and "
                             "exit; then `smile vos CKPT vos.root=DIR`")
    parser.add_argument("--videos", type=int, default=3, help="--generate: number of videos (default 3)")
    parser.add_argument("--frames", type=int, default=16, help="--generate: frames per video (default 16)")


def run(args: argparse.Namespace) -> int:
    if args.generate:
        from ..data.vos_synthetic import write_davis_layout

        names = write_davis_layout(args.generate, num_videos=args.videos, num_frames=args.frames)
        if not args.quiet:
            print(f"wrote {len(names)} videos in the DAVIS-2017 layout to {args.generate}", file=sys.stderr)
        return 0
    ckpt, extra = encoder_and_overrides(args)
    cfg = resolve(VosJob, args, extra)  # every config error surfaces here, before any work
    from ..eval.vos_job import run_vos

    run_vos(cfg, ckpt)
    return 0
