"""`smile data subset` / `smile data budget`: reproducible subsets of a video list (SEVERE low-shot, Fig. 5)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser("subset", help="a seeded, class-balanced (or stratified) subset of a list",
                       description="Write the entries of a seeded subset of LIST to OUT, keeping the list's own "
                                   "lines. --total N: class-balanced (SEVERE's 1,000-sample lists); --fraction F: "
                                   "stratified by class (the data-scale study). Same seed: a smaller subset lies "
                                   "inside a larger one. See docs/evaluation.md.")
    s.add_argument("list", metavar="LIST", help="video list (any format of docs/data.md) or folder")
    s.add_argument("--out", required=True, metavar="SUB", help="the subset list to write")
    size = s.add_mutually_exclusive_group(required=True)
    size.add_argument("--total", type=int, help="number of entries (e.g. 1000)")
    size.add_argument("--fraction", type=float, help="share of the entries, in (0, 1]")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--mode", choices=("balanced", "stratified"), default=None,
                   help="balanced: equal per class as far as the list allows (default with --total); stratified: "
                        "the list's class proportions (default with --fraction)")
    s.add_argument("--quiet", action="store_true", help="no summary on stderr")
    b = sub.add_parser("budget", help="lists and pretraining overlays of the fixed-budget study (Fig. 5)",
                       description="For each fraction (default 12.5 25 50 100%%): a nested stratified subset of LIST "
                                   "and a config overlay with the epochs scaled to keep the iterations constant "
                                   "(default 200 epochs at 100%%: 1600 / 800 / 400 / 200).")
    b.add_argument("list", metavar="LIST", help="the full pretraining list")
    b.add_argument("--out", required=True, metavar="DIR", help="folder for train_<pct> lists and pretrain_<pct>.yaml")
    b.add_argument("--config", default=None, metavar="FILE",
                   help="the base pretraining config (its train.strategy, stage split and warmup are scaled), e.g. "
                        "configs/pretrain/k400_vit_s_budget.yaml")
    b.add_argument("--fractions", type=float, nargs="+", default=None, metavar="F")
    b.add_argument("--full-epochs", type=int, default=None, help="epochs on the whole list (default 200, E.1)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--runs-dir", default="runs/budget", help="run.out_dir prefix of the overlays")
    b.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.action == "subset":
        from ..data.subset import select_subset

        mode = args.mode or ("balanced" if args.total is not None else "stratified")
        summary = select_subset(args.list, args.out, args.total, args.fraction, mode, args.seed)
        if not args.quiet:
            counts = [v[0] for v in summary["per_class"].values()]
            print(f"wrote {summary['subset']} of {summary['entries']} entries ({mode}, seed {args.seed}) to "
                  f"{args.out}: {summary['classes']} classes, {min(counts)}-{max(counts)} per class",
                  file=sys.stderr)
        return 0
    from ..data.budget import PAPER_FRACTIONS, PAPER_FULL_EPOCHS, write_budget_study

    rows = write_budget_study(args.list, args.out, args.fractions or PAPER_FRACTIONS,
                              args.full_epochs or PAPER_FULL_EPOCHS, args.seed, args.config, args.runs_dir)
    if not args.quiet:
        for r in rows:
            print(json.dumps(r), file=sys.stderr)
    return 0
