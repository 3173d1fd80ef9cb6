"""`smile demo`: the whole method from nothing, on 2 CPU cores, in minutes.

1. the embedded object bank (OpenMoji glyphs + shapes; pretraining and held-out splits);
2. the embedded benchmark (motion and appearance tasks, held-out objects, real mp4 files);
3. a filmstrip of the pretraining clips (paper Fig. 3);
4. pretraining of the tiny student on noise + synthetic motion with the embedded EfficientNet-Lite0 teacher
   (learning without natural video, paper section 5);
5. linear probe and kNN of the pretrained student and of the same student at random init, on both tasks;
6. a report folder: report.md (the table), the filmstrip, the loss curve, the frame-similarity maps side by side.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import PretrainJob, ProbeJob, load_config
from ..runlog import RunDir, atomic_write_text

# The demo's recipe, as data. Sizes: the tiny preset (8 frames at 64 px); the benchmark's 16-frame clips are read at
# stride 2. Trajectories: the official code's variant, whose paths span the frame; the paper's formula keeps objects
# near the centre at this size (docs/motion.md).
PRETRAIN_RECIPE = [
    "model.preset=tiny", "teacher.kind=embedded", "data.source=synthetic", "data.background=noise",
    "motion.num_objects=2", "motion.trajectory=official", "mask.kind=trajectory", "mask.ratio=0.8",
    "train.strategy=single", "train.batch_size=32", "train.lr=1.5e-2", "train.warmup_epochs=2",
    "train.log_every=5",
]
PROBE_RECIPE = ["model.preset=tiny", "probe.sampling_rate=2", "probe.epochs=60", "probe.batch_size=64",
                "probe.lrs=[1.0e-3,1.0e-2,1.0e-1]", "probe.flip=false", "probe.knn_k=10"]


@dataclass
class DemoSettings:
    out: Path
    epochs: int = 200  # pretraining epochs of `epoch_size` synthetic clips (~6.6 min on 2 cores)
    epoch_size: int = 512
    train_per_class: int = 40
    val_per_class: int = 20
    seed: int = 0
    quiet: bool = False


def _pretrain(settings: DemoSettings, rd: RunDir) -> Path:
    from ..engine.pretrain import pretrain

    out = settings.out / "pretrain"
    cfg = load_config(PretrainJob, overrides=[
        *PRETRAIN_RECIPE, f"train.epochs={settings.epochs}", f"data.epoch_size={settings.epoch_size}",
        f"train.seed={settings.seed}", f"run.out_dir={out}", f"run.quiet={str(settings.quiet).lower()}",
        "run.resume=auto"])
    rd.echo(f"[4/6] pretraining the tiny student: {settings.epochs} epochs x {settings.epoch_size} noise + motion "
            "clips, embedded teacher")
    return pretrain(cfg)


def evaluate_encoder(lists, checkpoint: str | None, out: Path, seed: int = 0, quiet: bool = False,
                     extra: list[str] | None = None) -> dict[str, Any]:
    """Linear probe + kNN of one encoder (a checkpoint, or the tiny student at random init) on one benchmark task.

    `lists` is a `benchmark.TaskLists`; results and the feature cache go under `out`.
    """
    from .probe_job import run_knn, run_probe

    overrides = [*PROBE_RECIPE, f"probe.train_list={lists.train}", f"probe.val_list={lists.val}",
                 f"probe.data_root={lists.root}", f"probe.seed={seed}", f"run.out_dir={out}",
                 f"probe.cache_dir={out / 'features'}", f"run.quiet={str(quiet).lower()}", *(extra or [])]
    probe = run_probe(load_config(ProbeJob, overrides=overrides), checkpoint)
    knn = run_knn(load_config(ProbeJob, overrides=[*overrides, f"run.out_dir={out}_knn"]), checkpoint)
    return {"probe": probe, "knn": knn, "similarity": json.loads((out / "similarity.json").read_text())}


def _filmstrip(settings: DemoSettings, report: Path) -> None:
    from ..commands.show_motion import render
    from ..motion import infuse_motion
    from ..motion.backgrounds import make_background
    from ..objects import default_bank

    cfg = load_config(PretrainJob, overrides=PRETRAIN_RECIPE)
    g = torch.Generator().manual_seed(settings.seed)
    clips = make_background("noise", 2, 16, 128, 128, g).contiguous()
    video, alpha = infuse_motion(clips, default_bank("pretrain"), cfg.motion, g)
    gif, strip = render(video, alpha, 8)
    strip.save(report / "motion_filmstrip.png")
    gif[0].save(report / "motion.gif", save_all=True, append_images=gif[1:], duration=125, loop=0)


def _table(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    lines = ["| task | encoder | linear probe top-1 | mean per-class | kNN top-1 | frame similarity (off-diagonal) |",
             "|---|---|---|---|---|---|"]
    for task, per_encoder in results.items():
        for name, r in per_encoder.items():
            off = next(iter(r["similarity"].values()))["off_diagonal_mean"]
            best = r["probe"]["best"]
            lines.append(f"| {task} | {name} | {best['top1']:.1f} | {best['mean_class']:.1f} | "
                         f"{r['knn']['top1']:.1f} | {off:.3f} |")
    return lines


def run_demo(settings: DemoSettings) -> dict[str, Any]:
    """Run every step; returns {task: {encoder: results}} and writes `<out>/report/`."""
    from ..objects import default_bank
    from .benchmark import BenchmarkSpec, generate_benchmark
    from .similarity import save_similarity

    start = time.time()
    out = settings.out
    rd = RunDir(out, quiet=settings.quiet)
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)

    rd.echo("[1/6] object bank")
    pre, held = default_bank("pretrain"), default_bank("heldout")
    rd.echo(f"      {len(pre)} pretraining objects, {len(held)} held-out objects (disjoint)")

    rd.echo("[2/6] embedded benchmark (held-out objects, mp4 files)")
    spec = BenchmarkSpec(num_frames=16, size=64, train_per_class=settings.train_per_class,
                         val_per_class=settings.val_per_class, seed=settings.seed)
    tasks = generate_benchmark(out / "benchmark", spec)

    rd.echo("[3/6] motion filmstrip")
    _filmstrip(settings, report)

    run_dir = _pretrain(settings, rd)
    checkpoint = str(run_dir / "model")

    rd.echo("[5/6] linear probe and kNN: random init vs SMILE")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for task, lists in tasks.items():
        results[task] = {
            name: evaluate_encoder(lists, ckpt, out / "eval" / f"{task}_{name.replace(' ', '_')}",
                                   seed=settings.seed, quiet=settings.quiet)
            for name, ckpt in (("random init", None), ("SMILE", checkpoint))}

    rd.echo("[6/6] report")
    maps = {}
    for name in ("random init", "SMILE"):
        sim_file = out / "eval" / f"motion_{name.replace(' ', '_')}" / "similarity.json"
        maps[name] = torch.tensor(next(iter(json.loads(sim_file.read_text()).values()))["matrix"])
    save_similarity(maps, report / "similarity.png", report / "similarity.json",
                    title="Frame-feature similarity, motion task val clips")
    if (run_dir / "loss_curve.png").is_file():
        shutil.copy(run_dir / "loss_curve.png", report / "loss_curve.png")
    minutes = (time.time() - start) / 60
    table = _table(results)
    text = "\n".join([
        "# smile demo", "",
        f"Pretrained the tiny student ({settings.epochs} epochs x {settings.epoch_size} clips of noise + synthetic "
        "object motion, embedded EfficientNet-Lite0 teacher) and probed it against the same student at random "
        f"init on the embedded benchmark (held-out objects). Total time {minutes:.1f} min.", "",
        *table, "",
        "Chance is 12.5% on both tasks (8 classes).", "",
        "![motion](motion_filmstrip.png)", "", "![loss](loss_curve.png)", "", "![similarity](similarity.png)", ""])
    atomic_write_text(report / "report.md", text)
    atomic_write_text(report / "results.json", json.dumps(results, indent=1, default=str))
    print("\n".join(table))
    print(f"\nreport: {report / 'report.md'} ({minutes:.1f} min)")
    return results
