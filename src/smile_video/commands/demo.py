"""`smile demo`: pretrain on synthetic video and evaluate it, from nothing (the README's main job)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--epochs", type=int, default=None, help="pretraining epochs (default 25: 400 steps)")
    parser.add_argument("--epoch-size", type=int, default=None, help="synthetic clips per epoch (default 512)")
    parser.add_argument("--per-class", type=int, default=None,
                        help="benchmark train clips per class (default 40; val and test get half each)")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="finetuning epochs (default 15)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, about a minute")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the demo in --out (same settings): its finished pretraining and finetuning are "
                            "reused, an interrupted one continues from its last checkpoint, the rest is redone")
    again.add_argument("--overwrite", action="store_true", help="replace the demo in --out")
    parser.epilog = ("A folder holds one demo: running `smile demo` again on the same --out is refused; add --resume "
                     "or --overwrite, or choose another --out.")


def run(args: argparse.Namespace) -> int:
    from ..eval.demo import DemoSettings, run_demo

    s = DemoSettings(out=Path(args.out), seed=args.seed, quiet=args.quiet, resume=args.resume,
                     overwrite=args.overwrite)
    if args.quick:
        s.epochs, s.epoch_size, s.train_per_class, s.val_per_class, s.test_per_class = 2, 64, 6, 3, 3
        s.finetune_epochs = 1
    if args.epochs is not None:
        s.epochs = args.epochs
    if args.epoch_size is not None:
        s.epoch_size = args.epoch_size
    if args.per_class is not None:
        s.train_per_class = args.per_class
        s.val_per_class = s.test_per_class = max(1, args.per_class // 2)
    if args.finetune_epochs is not None:
        s.finetune_epochs = args.finetune_epochs
    if min(s.epochs, s.epoch_size, s.train_per_class, s.finetune_epochs) < 1:
        raise ValueError("--epochs, --epoch-size, --per-class and --finetune-epochs must be >= 1")
    run_demo(s)
    return 0
