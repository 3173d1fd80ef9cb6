"""The fidelity study: do the paper's directions reproduce at CPU scale? (issue 12; docs/fidelity.md)

Pretrains the variants of `smile_video.eval.study.CORE_VARIANTS` (the CPU recipe with one change each; Table 7's
other backgrounds, `VARIANTS`' last rows, with --variants) under several seeds, evaluates each on the embedded
benchmark (linear probe chosen on val and reported on test, kNN, full finetuning reported on test, representation
statistics), and writes

    OUT/study.json        the settings the folder's results are measured under (a rerun under other settings,
                          e.g. another --model, is refused: use another --out)
    OUT/results.json      every (variant, seed) run, written after each one (a rerun skips what is done)
    OUT/fidelity.md       the protocol, mean ± std per variant, and the paper's directions beside ours
    OUT/fidelity.png      grouped bars with seed-std error bars

Usage: python benchmarks/fidelity.py [--out runs/fidelity] [--seeds 0 1 2] [--quick | --gpu]
Full study: 6 variants (random init, SMILE over dead leaves and three one-change variants of it, the paper's noise
row) x 3 seeds, 1,600 pretraining steps (the recipe's, docs/fidelity.md section 17), finetuning 120 epochs on both
tasks (section 20: the epochs at which a random init fits), 5 probes per encoder and task (about 6-7 h on 2 CPU
cores, estimated from its parts: a 1,600-step student takes ~20-35 min of one core, a 120-epoch finetuning ~11,
the probes and kNN ~5; not measured end to end). --quick: SMILE vs
random init only, 400 steps, finetuning 10 epochs on the motion task, one probe each, one seed unless --seeds is
given (5.1 min for one seed on 2 idle cores, 2026-12-03, before the readout and time-pooled probe columns were
added: about half a minute more an encoder).
--gpu: issue 12's GPU study (`study.GPU_SCALE`): ViT-S, 16 frames at 112 px (16-px patches: the CPU recipe's
token grid), the benchmark rendered at 112 px and 16 frames, SMILE vs random init, the CPU recipes otherwise (1,600
steps, 120 finetuning epochs on both tasks, 5 probes); on one CUDA device. Not yet run on a GPU: its time is not
measured (benchmarks/gpu_study.sh runs it on a lent device).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

from smile_video.eval.study import (
    FINETUNE_RECIPE,
    GPU_SCALE,
    PRETRAIN_RECIPE,
    PROBE_RECIPE,
    SMILE,
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
    ap.add_argument("--out", default=None, help="default runs/fidelity (--quick: runs/fidelity_quick)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="pretraining epochs of 512 clips (default 100)")
    ap.add_argument("--finetune-epochs", type=int, default=None, help="default 120 (FINETUNE_RECIPE)")
    ap.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS))
    ap.add_argument("--finetune-tasks", nargs="*", default=None, choices=["motion", "appearance"],
                    help="tasks to finetune on (default both; --quick: motion)")
    ap.add_argument("--probe-repeats", type=int, default=None,
                    help="independent probes per encoder and task, their mean reported (default 5; --quick: 1)")
    ap.add_argument("--model", nargs="+", default=[], metavar="model.KEY=VALUE",
                    help="student size of every variant, random init included, on top of the tiny preset "
                         "(e.g. model.depth=6 model.embed_dim=192 model.num_heads=6)")
    ap.add_argument("--finetune-lrs", type=float, nargs="+", default=[], metavar="LR",
                    help="finetune each encoder at every base lr and report the lr with the best final val top-1 "
                         "(default: FINETUNE_RECIPE's one lr)")
    ap.add_argument("--quick", action="store_true",
                    help="SMILE vs random init, 400 steps, 10 finetuning epochs (motion); one seed unless --seeds")
    ap.add_argument("--gpu", action="store_true",
                    help="the GPU scale (study.GPU_SCALE: ViT-S, 16 frames at 112 px, SMILE vs random init); "
                         "--model overrides go on top of its student")
    args = ap.parse_args()
    if args.quick and args.gpu:
        ap.error("--quick and --gpu are two scales: choose one")

    # a rerun resumes its results.json
    out = args.out or ("runs/fidelity_quick" if args.quick else "runs/fidelity_gpu" if args.gpu else "runs/fidelity")
    scale = copy.deepcopy(GPU_SCALE) if args.gpu else {}  # StudySettings keeps its lists: not the module's
    scale["model"] = [*scale.get("model", []), *args.model]
    s = StudySettings(out=Path(out), seeds=args.seeds, finetune_lrs=args.finetune_lrs, **scale)
    if args.quick:
        s.seeds = args.seeds if "--seeds" in sys.argv else args.seeds[:1]
        s.epochs, s.finetune_epochs, s.finetune_tasks = 25, 10, ("motion",)
        s.variants = ["random init", SMILE]
        s.probe_repeats = 1  # the 10-minute budget
    s.epochs = args.epochs or s.epochs
    s.finetune_epochs = args.finetune_epochs or s.finetune_epochs
    s.variants = args.variants or s.variants
    s.probe_repeats = args.probe_repeats or s.probe_repeats
    if args.finetune_tasks is not None:
        s.finetune_tasks = tuple(args.finetune_tasks)
    start = time.time()
    runs = run_study(s)
    summary = summarize(runs)
    student = s.student()
    minutes = (time.time() - start) / 60
    text = "\n".join([
        "# Fidelity study", "",
        f"Seeds {s.seeds}; pretraining {s.epochs} epochs x {s.epoch_size} clips (batch 32: "
        f"{s.epochs * s.epoch_size // 32} steps); finetuning {s.finetune_epochs} epochs on "
        f"{', '.join(s.finetune_tasks)}. "
        f"Student: {student.preset}, {student.depth} blocks of width {student.embed_dim}, {student.num_frames} frames "
        f"at {student.img_size} px, {student.patch_size}-px patches"
        f"{' (the recipe with ' + ', '.join(s.model) + ')' if s.model else ''}. "
        f"This run: {minutes:.1f} min.", "",
        "Protocol (set from random-init runs, never changed to improve a pretrained score): embedded benchmark "
        f"({s.benchmark_size} px, {s.benchmark_frames} frames read at stride {s.sampling_rate}; train and val on "
        "object pool A, test on the disjoint pool B). Linear "
        "probe: lrs and epoch chosen on val, test top-1 reported. kNN (k=10) on test. Finetuning: fixed recipe, last "
        "epoch, test top-1" + (f"; base lr chosen per encoder among {s.finetune_lrs} by the last epoch's val top-1"
        if s.finetune_lrs else "") + ". Statistics on the motion task's val clips. Beside the cells, never used to "
        "choose anything: `probe_time`, the same linear probe on per-time-step features (probe.pooling=time), and "
        f"the motion readout (held-out ridge R^2 on {s.readout_clips} synthetic clips of one object and their time "
        "reversals, the same clips for every encoder: `readout_direction_*` = which way the object moves, 0 when a "
        "clip and its reversal look alike; object- or mean-pooled tokens; docs/fidelity.md section 24). "
        "Mean ± sample std over seeds.", "",
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
