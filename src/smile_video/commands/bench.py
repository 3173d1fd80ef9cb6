"""`smile bench`: run the speed benchmarks of the source checkout's `benchmarks/` folder."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

SCRIPTS = {"motion": "motion.py", "train-step": "train_step.py", "finetune-step": "finetune_step.py",
           "data": "data.py"}


def benchmarks_dir() -> Path:
    """The checkout's benchmarks/ folder (an editable install keeps the package inside the checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "benchmarks" / "train_step.py").is_file():
            return parent / "benchmarks"
    raise FileNotFoundError("benchmarks/ not found: `smile bench` runs from a source checkout installed with "
                            "`pip install -e .`")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=[*SCRIPTS, "all"],
                        help="motion: motion-infusion clips/s against a per-frame PIL reference; train-step: clips/s, "
                             "peak memory and MFU of a full pretraining step per preset; finetune-step: a "
                             "finetuning step in fp32 against bf16 autocast on the CPU; data: training clips/s per "
                             "core on generated K400-like mp4s per decoder and num_samples against the paper's "
                             "loader path; all: every one with defaults")
    parser.add_argument("args", nargs=argparse.REMAINDER,
                        help="passed to the script (see `python benchmarks/<script> --help`)")


def run(args: argparse.Namespace) -> int:
    root = benchmarks_dir()
    names = list(SCRIPTS) if args.which == "all" else [args.which]
    for name in names:
        script = root / SCRIPTS[name]
        saved = sys.argv
        sys.argv = [str(script), *(args.args if args.which != "all" else [])]
        try:
            runpy.run_path(str(script), run_name="__main__")
        finally:
            sys.argv = saved
    return 0
