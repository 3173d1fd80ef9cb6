"""`smile tad-features CKPT -c configs/tad/thumos14.yaml tad.list=LIST`: sliding-window features per video for
temporal action localisation (OpenTAD / ActionFormer; paper Table 10). See `smile_video.eval.tad`."""

from __future__ import annotations

import argparse

from ..config.generalisation import TadJob
from ._config import resolve
from .probe import add_encoder_arguments, encoder_and_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_encoder_arguments(parser, "runs/tad")


def run(args: argparse.Namespace) -> int:
    ckpt, extra = encoder_and_overrides(args)
    cfg = resolve(TadJob, args, extra)  # every config error surfaces here, before any work
    from ..eval.tad import run_tad_features

    run_tad_features(cfg, ckpt)
    return 0
