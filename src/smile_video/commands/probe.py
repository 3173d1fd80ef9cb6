"""`smile probe`: linear probing of a frozen encoder on cached features (paper Table 16)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import ProbeJob
from ._config import add_config_arguments, add_run_dir_arguments, resolve, run_dir_overrides


def add_encoder_arguments(parser: argparse.ArgumentParser, default_out: str, resumable: bool = False) -> None:
    """CKPT (or --random-init), --out, --overwrite (--force-resume for a job that resumes), then the config files
    and overrides."""
    parser.add_argument("checkpoint", nargs="?", default=None, metavar="CKPT",
                        help="encoder checkpoint (any format smile reads); omit with --random-init")
    parser.add_argument("--random-init", action="store_true",
                        help="evaluate a randomly initialised encoder described by model.* "
                             "(seed: probe.seed or finetune.seed)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help=f"run directory (run.out_dir; default {default_out})")
    add_run_dir_arguments(parser, resumable)
    add_config_arguments(parser)


def encoder_and_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """The checkpoint path (None for --random-init) and extra overrides; a first override is not a checkpoint."""
    ckpt = args.checkpoint
    if ckpt is not None and "=" in ckpt and not Path(ckpt).exists():
        args.overrides = [ckpt, *args.overrides]
        ckpt = None
    if (ckpt is None) == (not args.random_init) and not getattr(args, "print_config", False):
        raise ValueError("give exactly one of an encoder checkpoint (CKPT) or --random-init")
    return ckpt, ([f"run.out_dir={args.out}"] if args.out else []) + run_dir_overrides(args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_encoder_arguments(parser, "runs/probe")


def run(args: argparse.Namespace) -> int:
    ckpt, extra = encoder_and_overrides(args)
    cfg = resolve(ProbeJob, args, extra)  # every config error surfaces here, before any work
    from ..eval.probe_job import run_probe

    run_probe(cfg, ckpt)
    return 0
