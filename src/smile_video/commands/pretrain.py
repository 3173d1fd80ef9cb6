"""`smile pretrain`: masked video pretraining (single / mixed / progressive), also under torchrun."""

from __future__ import annotations

import argparse
import sys

from ..config import PretrainJob
from ._config import add_config_arguments, add_run_dir_arguments, resolve, run_dir_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", default=None, metavar="auto|PATH",
                        help="resume from the newest checkpoint in the run directory (auto) or from PATH; the "
                             "config must be the run's own (see --force-resume)")
    parser.add_argument("--out", default=None, metavar="DIR", help="run directory (same as run.out_dir=DIR)")
    add_run_dir_arguments(parser)


def run(args: argparse.Namespace) -> int:
    extra = run_dir_overrides(args)
    if args.resume:
        extra.append(f"run.resume={args.resume}")
    if args.out:
        extra.append(f"run.out_dir={args.out}")
    cfg = resolve(PretrainJob, args, extra)  # every config error surfaces here, before any work
    from ..engine.pretrain import TrainingError, pretrain

    try:
        pretrain(cfg)
    except TrainingError as e:
        print(f"smile pretrain: {e}", file=sys.stderr)
        return 1
    return 0
