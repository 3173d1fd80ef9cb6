"""`smile verify PATH...`: check checkpoints against their manifest.json (each file's size and sha256).

Exit status 0 when nothing is damaged, 1 otherwise (a checkpoint without a manifest, written before manifests
existed, is listed and not counted as damaged)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="a run directory (its checkpoints/step_* and model/) or one checkpoint directory")


def run(args: argparse.Namespace) -> int:
    from ..manifest import verify_tree

    checked = damaged = unchecked = 0
    for path in args.paths:
        for folder, problems in verify_tree(path):
            checked += 1
            if problems is None:
                unchecked += 1
                print(f"{folder}: no manifest.json (not checked)")
            elif problems:
                damaged += 1
                print(f"{folder}: DAMAGED: {'; '.join(problems)}")
            else:
                print(f"{folder}: intact")
    print(f"{checked} checkpoint directories: {damaged} damaged, {unchecked} without a manifest")
    return 1 if damaged else 0
