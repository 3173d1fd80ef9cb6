"""`smile demo`: the whole method from nothing, on 2 CPU cores, in minutes.

1. the embedded object bank (OpenMoji glyphs + shapes; pretraining and held-out splits);
2. the embedded benchmark (motion and appearance tasks, held-out objects, real mp4 files);
3. a filmstrip of the pretraining clips (paper Fig. 3);
4. pretraining of the tiny student on dead leaves + synthetic motion with the embedded EfficientNet-Lite0 teacher
   (learning without natural video, paper section 5);
5. linear probe, kNN and full finetuning of the pretrained student and of the same student at random init, on both
   tasks: chosen on val, reported on the test split (held-out objects); representation statistics;
6. a report folder: report.md (the table), the filmstrip, the loss curve, the centred frame-similarity maps.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import PretrainJob, load_config
from ..runlog import RunDir, atomic_write_text
from .study import PRETRAIN_RECIPE  # the demo's recipe is the fidelity study's (docs/fidelity.md)


@dataclass
class DemoSettings:
    out: Path
    # pretraining epochs of `epoch_size` synthetic clips: 400 steps at batch 32, a quarter of the study's 1,600 (the
    # demo's 10-minute budget; docs/fidelity.md section 17)
    epochs: int = 25
    epoch_size: int = 512
    train_per_class: int = 40
    val_per_class: int = 20
    test_per_class: int = 20
    finetune_epochs: int = 15
    finetune_tasks: tuple[str, ...] = ("motion",)  # the appearance task's finetuning is in benchmarks/fidelity.py
    seed: int = 0
    quiet: bool = False
    resume: bool = False  # continue a demo in `out`: the finished pretraining and finetuning are reused
    overwrite: bool = False  # replace a demo in `out`

    def record(self) -> dict[str, Any]:
        """What decides the demo's results (written to demo.json; a resume must match it)."""
        return {"epochs": self.epochs, "epoch_size": self.epoch_size, "train_per_class": self.train_per_class,
                "val_per_class": self.val_per_class, "test_per_class": self.test_per_class,
                "finetune_epochs": self.finetune_epochs, "finetune_tasks": list(self.finetune_tasks),
                "seed": self.seed}


def _claim(settings: DemoSettings) -> None:
    """One demo per folder: a folder that holds one is refused unless --resume (with the same settings) or
    --overwrite."""
    from ..run_guard import RunDirError, claim_run_dir

    out = settings.out
    resumable = (out / "demo.json").is_file() or (out / "pretrain").is_dir()
    claim_run_dir(out, resume=settings.resume, overwrite=settings.overwrite, resumable=resumable,
                  markers=("demo.json", "report", "pretrain"), resume_hint="--resume (the finished pretraining and "
                  "finetuning are reused)", overwrite_hint="--overwrite")
    saved = out / "demo.json"
    if settings.resume and saved.is_file():
        old = json.loads(saved.read_text())
        diff = {k: (old.get(k), v) for k, v in settings.record().items() if old.get(k) != v}
        if diff:
            shown = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise RunDirError(f"--resume: {out} holds a demo with other settings ({shown}); resume it with its own "
                              "settings, or replace it with --overwrite")
    atomic_write_text(saved, json.dumps(settings.record(), indent=1))


def _pretrain_config(settings: DemoSettings) -> PretrainJob:
    """The demo's pretraining job: the study's recipe at the demo's length and seed, resolved once."""
    return load_config(PretrainJob, overrides=[
        *PRETRAIN_RECIPE, f"train.epochs={settings.epochs}", f"data.epoch_size={settings.epoch_size}",
        f"train.seed={settings.seed}", f"run.out_dir={settings.out / 'pretrain'}",
        f"run.quiet={str(settings.quiet).lower()}", "run.resume=auto"])


def _pretrain(cfg: PretrainJob, settings: DemoSettings, rd: RunDir) -> Path:
    from ..engine.pretrain import pretrain

    rd.echo(f"[4/6] pretraining the tiny student: {settings.epochs} epochs x {settings.epoch_size} clips of "
            f"{cfg.data.background} backgrounds + motion, embedded teacher")
    return pretrain(cfg)


def _filmstrip(cfg: PretrainJob, seed: int, report: Path) -> None:
    from ..commands.show_motion import render
    from ..motion import infuse_motion
    from ..motion.backgrounds import make_background
    from ..objects import default_bank

    g = torch.Generator().manual_seed(seed)
    clips = make_background(cfg.data.background, 2, 16, 128, 128, g).contiguous()
    video, alpha = infuse_motion(clips, default_bank("pretrain"), cfg.motion, g)
    gif, strip = render(video, alpha, 8)
    strip.save(report / "motion_filmstrip.png")
    gif[0].save(report / "motion.gif", save_all=True, append_images=gif[1:], duration=125, loop=0)


def _table(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    lines = ["| task | encoder | linear probe | attentive probe | finetune | kNN | frame similarity, centred (raw) |",
             "|---|---|---|---|---|---|---|"]
    for task in ("motion", "appearance"):
        for name, r in results.items():
            st = r["stats"]
            ft = f"{r[task]['finetune']:.1f}" if "finetune" in r[task] else "-"
            att = f"{r[task]['attentive']:.1f}" if "attentive" in r[task] else "-"
            lines.append(f"| {task} | {name} | {r[task]['probe']:.1f} | {att} | {ft} | "
                         f"{r[task]['knn']:.1f} | {st['similarity_centred']:.3f} ({st['similarity_raw']:.3f}) |")
    return lines


def run_demo(settings: DemoSettings) -> dict[str, Any]:
    """Run every step; returns {encoder: `study.evaluate_checkpoint` results} and writes `<out>/report/`. The demo's
    folder is locked against other processes until this returns (`_claim` takes the lock)."""
    from ..run_guard import holding_run_dir

    with holding_run_dir(settings.out, lock=False):
        return _run_demo(settings)


def _run_demo(settings: DemoSettings) -> dict[str, Any]:
    from ..objects import default_bank
    from .benchmark import BenchmarkSpec, generate_benchmark
    from .similarity import save_similarity
    from .study import evaluate_checkpoint

    start = time.time()
    out = settings.out
    _claim(settings)  # before any work
    rd = RunDir(out, quiet=settings.quiet)
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)

    rd.echo("[1/6] object bank")
    pre, held = default_bank("pretrain"), default_bank("heldout")
    rd.echo(f"      {len(pre)} pretraining objects, {len(held)} held-out objects (disjoint)")

    rd.echo("[2/6] embedded benchmark (held-out objects, mp4 files)")
    spec = BenchmarkSpec(num_frames=16, size=64, train_per_class=settings.train_per_class,
                         val_per_class=settings.val_per_class, test_per_class=settings.test_per_class,
                         seed=settings.seed)
    tasks = generate_benchmark(out / "benchmark", spec)

    cfg = _pretrain_config(settings)
    rd.echo("[3/6] motion filmstrip")
    _filmstrip(cfg, settings.seed, report)

    run_dir = _pretrain(cfg, settings, rd)
    checkpoint = run_dir / "model"

    rd.echo("[5/6] linear and attentive probes, kNN and finetuning: random init vs SMILE (chosen on val, reported on "
            "test)")
    results = {}
    for name, ckpt in (("random init", None), ("SMILE", checkpoint)):
        # each probe / kNN / finetuning run's first line names its encoder, task list and run directory
        rd.echo(f"      encoder: {name} (tasks: {', '.join(tasks)})")
        results[name] = evaluate_checkpoint(ckpt, tasks, out / "eval" / name.replace(" ", "_"), settings.seed,
                                            settings.finetune_epochs, settings.quiet, settings.finetune_tasks)

    rd.echo("[6/6] report")
    maps = {name: torch.tensor(r["similarity_map_centred"]) for name, r in results.items()}
    save_similarity(maps, report / "similarity.png", report / "similarity.json",
                    title="Centred frame-feature similarity, motion task val clips")
    if (run_dir / "loss_curve.png").is_file():
        shutil.copy(run_dir / "loss_curve.png", report / "loss_curve.png")
    minutes = (time.time() - start) / 60
    table = _table(results)
    text = "\n".join([
        "# smile demo", "",
        f"Pretrained the tiny student ({settings.epochs} epochs x {settings.epoch_size} clips of {cfg.data.background} "
        "backgrounds + synthetic object motion, embedded EfficientNet-Lite0 teacher) and evaluated it against the "
        f"same student at random init on the embedded benchmark. Total time {minutes:.1f} min.", "",
        "Protocol: train and val clips show one pool of held-out objects, test clips a disjoint pool. Linear probe: "
        "lr and epoch chosen on val, test top-1 reported; attentive probe (V-JEPA's, on every token): the same; one "
        "probe each (for time: a probe's own init moves its number by 2-3 points, the study averages five). "
        "Finetuning: a fixed recipe "
        f"({settings.finetune_epochs} epochs, docs/fidelity.md), last epoch, test top-1. kNN (k=10): test top-1. "
        "Frame similarity: off-diagonal mean over the motion task's val clips, centred (the dataset-mean feature "
        "subtracted; lower = features change more over time) and raw (paper Fig. 4). One seed: an anecdote; "
        "`benchmarks/fidelity.py` has the seeds and spreads.", "",
        *table, "",
        "Chance is 12.5% on both tasks (8 classes).", "",
        "![motion](motion_filmstrip.png)", "", "![loss](loss_curve.png)", "", "![similarity](similarity.png)", ""])
    atomic_write_text(report / "report.md", text)
    atomic_write_text(report / "results.json", json.dumps(results, indent=1, default=str))
    print("\n".join(table))
    print(f"\nreport: {report / 'report.md'} ({minutes:.1f} min)")
    return results
