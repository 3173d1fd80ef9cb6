"""`smile knn`: cosine k-nearest-neighbour classification on the linear probe's cached features."""

from __future__ import annotations

import argparse

from ..config import KnnJob
from ._config import resolve
from .probe import add_encoder_arguments, encoder_and_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_encoder_arguments(parser, "runs/knn")


def run(args: argparse.Namespace) -> int:
    ckpt, extra = encoder_and_overrides(args)
    cfg = resolve(KnnJob, args, extra)
    from ..eval.probe_job import run_knn

    run_knn(cfg, ckpt)
    return 0
