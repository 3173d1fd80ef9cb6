"""The paper's key ablations at tiny scale on the embedded benchmark, several seeds, one markdown table.

Each variant pretrains the tiny student (CPU-sized) and linear-probes it on the embedded benchmark's motion and
appearance tasks (held-out objects). Variants, against the paper:

    smile          features (embedded teacher), synthetic motion, trajectory masking, progressive   (the method)
    no-motion      Table 4a: no synthetic motion (original clips only, tube masking follows)
    pixels         Table 4h: normalised-pixel targets instead of teacher features
    tube-mask      Table 4g: tube masking instead of trajectory masking
    mixed, single  Table 4d: the other training strategies
    noise-motion   Table 7: noise backgrounds + motion, no natural clip at all
    no-pretrain    Table 7: the student at random init

"Original clips" are the embedded still photos (paper Table 7's still-image background), since nothing here is
downloaded: stage 2 of progressive training and the original half of mixed batches use them.

    python benchmarks/ablations.py --out runs/ablations --seeds 0 1 2       # ~30-40 min on 2 CPU cores
    python benchmarks/ablations.py --variants smile pixels --seeds 0 --epochs 4   # a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from smile_video.eval.study import PRETRAIN_RECIPE  # noqa: E402  (the study's recipe: tiny student, 8-px patches)

# The fidelity study's recipe (docs/fidelity.md) over still-photo backgrounds, so that progressive / mixed have
# "original" clips; every variant sets its strategy, and main() the epoch size.
BASE = [*PRETRAIN_RECIPE, "data.background=image", "train.log_every=10"]

VARIANTS: dict[str, list[str] | None] = {
    "smile": ["train.strategy=progressive"],
    "no-motion": ["train.strategy=single", "motion.enabled=false"],
    "pixels": ["train.strategy=progressive", "teacher.kind=pixel", "teacher.target_norm=none"],
    "tube-mask": ["train.strategy=progressive", "mask.kind=tube"],
    "mixed": ["train.strategy=mixed"],
    "single": ["train.strategy=single"],
    "noise-motion": ["train.strategy=single", "data.background=noise"],
    "no-pretrain": None,
}
PAPER = {  # what the paper reports for the same comparison (ViT-S/B, K400/SSv2), for the table's last column
    "smile": "the method", "no-motion": "4a: motion helps (+1.2..+3.4)", "pixels": "4h: features >> pixels",
    "tube-mask": "4g: trajectory > tube (~+1)", "mixed": "4d: progressive > mixed",
    "single": "4d: progressive > single",
    "noise-motion": "Table 7: close to natural video", "no-pretrain": "Table 7: far below",
}


def epochs_overrides(variant: list[str], epochs: int) -> list[str]:
    if "train.strategy=progressive" in variant:
        return [f"train.stage1_epochs={epochs // 2}", f"train.stage2_epochs={epochs - epochs // 2}"]
    return [f"train.epochs={epochs}"]


def run_variant(name: str, seed: int, args: argparse.Namespace, tasks) -> dict[str, float]:
    from smile_video.config import PretrainJob, load_config
    from smile_video.engine.pretrain import pretrain
    from smile_video.eval.study import evaluate_checkpoint

    out = Path(args.out) / f"{name}_seed{seed}"
    variant = VARIANTS[name]
    checkpoint = None
    if variant is not None:
        cfg = load_config(PretrainJob, overrides=[
            *BASE, *variant, *epochs_overrides(variant, args.epochs), f"data.epoch_size={args.epoch_size}",
            f"train.seed={seed}", f"run.out_dir={out / 'pretrain'}", "run.quiet=true", "run.resume=auto"])
        checkpoint = pretrain(cfg) / "model"
    r = evaluate_checkpoint(checkpoint, tasks, out / "eval", seed, quiet=True, finetune=False)
    return {task: r[task]["probe"] for task in tasks}  # chosen on val, reported on test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/ablations")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=16, help="pretraining epochs of --epoch-size clips")
    parser.add_argument("--epoch-size", type=int, default=512)
    parser.add_argument("--per-class", type=int, default=40, help="benchmark train clips per class (val: half)")
    args = parser.parse_args()

    from smile_video.eval.benchmark import BenchmarkSpec, generate_benchmark

    spec = BenchmarkSpec(num_frames=16, size=64, train_per_class=args.per_class, val_per_class=args.per_class // 2)
    tasks = generate_benchmark(Path(args.out) / "benchmark", spec)
    results: dict[str, dict[str, list[float]]] = {}
    log = Path(args.out) / "ablations.jsonl"
    for name in args.variants:
        for seed in args.seeds:
            t0 = time.time()
            scores = run_variant(name, seed, args, tasks)
            record = {"variant": name, "seed": seed, **scores, "minutes": round((time.time() - t0) / 60, 2)}
            with open(log, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
            for task, v in scores.items():
                results.setdefault(name, {}).setdefault(task, []).append(v)

    def cell(values: list[float]) -> str:
        if len(values) == 1:
            return f"{values[0]:.1f}"
        return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"

    lines = ["| variant | motion top-1 | appearance top-1 | paper's finding |", "|---|---|---|---|"]
    for name, per_task in results.items():
        lines.append(f"| {name} | {cell(per_task['motion'])} | {cell(per_task['appearance'])} | {PAPER[name]} |")
    table = "\n".join(lines)
    (Path(args.out) / "ablations.md").write_text(
        f"Linear-probe test top-1 (%, lr and epoch chosen on val), mean ± std over seeds {args.seeds}; "
        f"{args.epochs} epochs x {args.epoch_size} clips of pretraining; chance 12.5%.\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
