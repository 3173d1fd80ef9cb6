"""Shared CLI plumbing for verbs driven by a typed config: ``--config FILE`` (repeatable), overrides, ``--quiet`` and
``--print-config`` (the resolved config as YAML that ``-c`` reads back)."""

from __future__ import annotations

import argparse
from typing import TypeVar

from ..config import load_config, to_yaml

T = TypeVar("T")


class ConfigPrinted(Exception):
    """Raised by `resolve` after ``--print-config`` printed the config: the verb stops there (exit status 0)."""


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", action="append", default=[], metavar="FILE",
                        help="YAML config file (repeatable; later files win)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="override any config value, e.g. model.depth=6 train.lr=1e-4")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or messages (metrics still written)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (defaults + -c files + overrides + flags) as YAML and exit; "
                             "save it and pass it back with -c FILE")


def add_run_dir_arguments(parser: argparse.ArgumentParser, resumable: bool = True) -> None:
    """--overwrite (and, for jobs that resume, --force-resume): what may happen to a run directory that holds a run."""
    again = "; --resume continues it instead" if resumable else ""
    parser.add_argument("--overwrite", action="store_true",
                        help="the run directory already holds a run: remove its files and start again "
                             f"(run.overwrite=true; without it such a folder is refused{again})")
    if resumable:
        parser.add_argument("--force-resume", action="store_true",
                            help="resume although the config changed in a way that alters the result (model, data, "
                                 "plan, seed); by default such a resume is refused (run.force_resume=true)")


def run_dir_overrides(args: argparse.Namespace) -> list[str]:
    """The overrides of --overwrite / --force-resume."""
    out = []
    if getattr(args, "overwrite", False):
        out.append("run.overwrite=true")
    if getattr(args, "force_resume", False):
        out.append("run.force_resume=true")
    return out


def resolve(job: type[T], args: argparse.Namespace, extra: list[str] | None = None) -> T:
    """Resolve the job's config from --config files and overrides; `extra` overrides come last. With
    ``--print-config`` print it as YAML and raise `ConfigPrinted`."""
    overrides = list(args.overrides) + list(extra or [])
    if getattr(args, "quiet", False):
        overrides.append("run.quiet=true")
    cfg = load_config(job, args.config, overrides)
    if getattr(args, "print_config", False):
        print(to_yaml(cfg), end="")
        raise ConfigPrinted
    return cfg
