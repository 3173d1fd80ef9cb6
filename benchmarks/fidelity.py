"""The fidelity study: do the paper's directions reproduce at CPU scale? (issue 12; docs/fidelity.md)

Pretrains every variant of `smile_video.eval.study.VARIANTS` (the CPU recipe with one change each) under several
seeds, evaluates each on the embedded benchmark (linear probe chosen on val and reported on test, kNN, full
finetuning reported on test, representation statistics), and writes

    OUT/results.json      every (variant, seed) run, written after each one (a rerun skips what is done)
    OUT/fidelity.md       the protocol, mean ± std per variant, and the paper's directions beside ours
    OUT/fidelity.png      grouped bars with seed-std error bars

Usage: python benchmarks/fidelity.py [--out runs/fidelity] [--seeds 0 1 2] [--quick]
--quick: one seed, 400 pretraining steps, 10 finetuning epochs (a smoke run of the whole study, ~10 min).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from smile_video.eval.study import (
    FINETUNE_RECIPE,
    PRETRAIN_RECIPE,
    PROBE_RECIPE,
    VARIANTS,
    StudySettings,
    directions_table,
    plot_study,
    results_table,
    run_study,
    summarize,
)
from smile_video.runlog import atomic_write_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/fidelity")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="pretraining epochs of 512 clips (default 75)")
    ap.add_argument("--finetune-epochs", type=int, default=None, help="default 30")
    ap.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS))
    ap.add_argument("--quick", action="store_true", help="one seed, 400 steps, 10 finetuning epochs")
    args = ap.parse_args()

    s = StudySettings(out=Path(args.out), seeds=args.seeds)
    if args.quick:
        s.seeds, s.epochs, s.finetune_epochs = args.seeds[:1], 25, 10
    s.epochs = args.epochs or s.epochs
    s.finetune_epochs = args.finetune_epochs or s.finetune_epochs
    s.variants = args.variants or s.variants
    start = time.time()
    runs = run_study(s)
    summary = summarize(runs)
    minutes = (time.time() - start) / 60
    text = "\n".join([
        "# Fidelity study", "",
        f"Seeds {s.seeds}; pretraining {s.epochs} epochs x {s.epoch_size} clips (batch 32: "
        f"{s.epochs * s.epoch_size // 32} steps); finetuning {s.finetune_epochs} epochs. "
        f"This run: {minutes:.1f} min.", "",
        "Protocol (fixed before any score was seen): embedded benchmark (64 px, 16 frames read at stride 2; train "
        "and val on object pool A, test on the disjoint pool B). Linear probe: lrs and epoch chosen on val, test "
        "top-1 reported. kNN (k=10) on test. Finetuning: fixed recipe, last epoch, test top-1. Statistics on the "
        "motion task's val clips. Mean ± sample std over seeds.", "",
        f"Pretraining recipe: `{' '.join(PRETRAIN_RECIPE)}`", "",
        f"Probe: `{' '.join(PROBE_RECIPE)}`", "", f"Finetune: `{' '.join(FINETUNE_RECIPE)}`", "",
        "## Test top-1 (%) and frame similarity", "", *results_table(summary), "",
        "## The paper's directions", "", *directions_table(summary), "",
        "![bars](fidelity.png)", ""])
    atomic_write_text(s.out / "fidelity.md", text)
    plot_study(summary, s.out / "fidelity.png")
    print(text)


if __name__ == "__main__":
    main()
