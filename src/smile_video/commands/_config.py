"""Shared CLI plumbing for verbs driven by a typed config: ``--config FILE`` (repeatable) and overrides."""

from __future__ import annotations

import argparse
from typing import TypeVar

from ..config import load_config

T = TypeVar("T")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", action="append", default=[], metavar="FILE",
                        help="YAML config file (repeatable; later files win)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="override any config value, e.g. model.depth=6 train.lr=1e-4")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or messages (metrics still written)")


def resolve(job: type[T], args: argparse.Namespace, extra: list[str] | None = None) -> T:
    """Resolve the job's config from --config files and overrides; `extra` overrides come last."""
    overrides = list(args.overrides) + list(extra or [])
    if getattr(args, "quiet", False):
        overrides.append("run.quiet=true")
    return load_config(job, args.config, overrides)
