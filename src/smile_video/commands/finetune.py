"""`smile finetune`: full finetuning with the VideoMAE recipe (paper Table 17); DDP under torchrun."""

from __future__ import annotations

import argparse

from ..config import FinetuneJob
from ._config import resolve
from .probe import add_encoder_arguments, encoder_and_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_encoder_arguments(parser, "runs/finetune", resumable=True)
    parser.add_argument("--resume", default=None, metavar="auto|PATH",
                        help="continue from the newest per-epoch checkpoint in the run directory (auto; none: start "
                             "fresh) or from the checkpoint PATH (same as run.resume=...)")


def run(args: argparse.Namespace) -> int:
    ckpt, extra = encoder_and_overrides(args)
    if args.resume:
        extra.append(f"run.resume={args.resume}")
    cfg = resolve(FinetuneJob, args, extra)  # every config error surfaces here, before any work
    from ..eval.finetune import finetune

    finetune(cfg, ckpt)
    return 0
