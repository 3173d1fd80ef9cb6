"""`smile objects build SRC --out BANK` and `smile objects info BANK`: make and describe object banks."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="decode a folder of RGBA images once into a bank file",
                       description="SRC is <SRC>/<category>/<n>.png (the paper's object set) or a flat folder "
                                   "(category = file stem). Corrupt files, non-images and images without usable "
                                   "alpha are skipped and listed.")
    b.add_argument("src", metavar="SRC", help="folder of images with alpha, or 'default' for the embedded bank")
    b.add_argument("--out", required=True, metavar="BANK", help="bank file to write (.safetensors)")
    b.add_argument("--max-side", type=int, default=256, help="cap on a sprite's longest side in pixels (256)")
    b.add_argument("--split", default="all", choices=("pretrain", "heldout", "all"),
                   help="with SRC=default: which split of the embedded bank to write (all)")
    i = sub.add_parser("info", help="describe a bank file", description="Counts, sizes and categories of a bank.")
    i.add_argument("bank", metavar="BANK", help="bank file, or 'default' / 'default:heldout' for the embedded bank")
    i.add_argument("--categories", type=int, default=10, help="how many of the largest categories to list (10)")


def _open(spec: str):
    from ..objects import ObjectBank, default_bank

    if spec == "default" or spec.startswith("default:"):
        return default_bank(spec.partition(":")[2] or "pretrain")
    return ObjectBank.load(spec)


def run(args: argparse.Namespace) -> int:
    from ..objects import build_bank, default_bank

    if args.action == "build":
        start = time.time()
        if args.src == "default":
            bank, skipped = default_bank(args.split), []
        else:
            if args.max_side < 2:
                raise ValueError(f"--max-side must be >= 2, got {args.max_side}")
            bank, skipped = build_bank(args.src, args.max_side)
        bank.save(args.out)
        print(f"wrote {args.out}: {len(bank)} objects in {bank.num_categories} categories "
              f"({time.time() - start:.1f} s); skipped {len(skipped)} files")
        for name, reason in skipped:
            print(f"  skipped {name}: {reason}", file=sys.stderr)
        return 0
    bank = _open(args.bank)
    sides = [max(s.shape[1:]) for s in bank.sprites]
    counts = Counter(bank.labels.tolist())
    print(f"{args.bank}: {len(bank)} objects, {bank.num_categories} categories, max_side {bank.max_side}")
    print(f"  longest side: min {min(sides)}, median {sorted(sides)[len(sides) // 2]}, max {max(sides)} px")
    print(f"  objects per category: min {min(counts.values())}, max {max(counts.values())}")
    for label, n in counts.most_common(args.categories):
        print(f"  {n:5d}  {bank.categories[label]}")
    return 0
