"""The pretraining loop: motion infusion, masking, teacher targets, student prediction, in one command.

Strategies (paper section 3.4): ``single`` (augmented clips only), ``mixed`` (original and augmented clips in every
micro-batch, half each), ``progressive`` (stage 1 augmented, stage 2 original). Runs alone or under torchrun (DDP).

Determinism: the items of a micro-batch slot and every random draw made for it (motion, masks, drop path) depend only
on (seed, step, slot) — see `engine.sampler` — so a resumed run and an N-process run reproduce a 1-process,
uninterrupted run (bitwise on CPU for resume; up to reduction order for DDP).
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import save_model
from ..config import PretrainJob
from ..data.collate import collate
from ..devices import resolve_device
from ..errors import JobError
from ..models import PretrainModel
from ..run_guard import claim_run_dir, format_changes, lock_for_resume, releases_run_dir, resume_changes, saved_config
from ..runlog import RunDir, truncate_metrics
from ..seeding import derive_seed
from ..teachers import build_teacher
from ..teachers.base import resolve_autocast_dtype
from .checkpoints import find_resume, load_training_state, save_checkpoint
from .distributed import (
    DistInfo,
    all_reduce_mean,
    all_reduce_sum_int,
    cleanup,
    init_distributed,
    max_param_divergence,
)
from .loader import loader_options
from .optim import build_adamw, cosine_lr, set_lr
from .plan import Plan, make_plan
from .report import plot_loss_curve
from .sampler import RunBatchSampler
from .step import MicroStep

# Keys a resume may change without changing what the run computes (logging, checkpoint cadence, data workers: the
# items read and every random draw depend only on (seed, step, slot)). Any other change is refused on resume.
RESUME_SAFE_KEYS = ("run.*", "train.log_every", "train.save_every", "train.keep_last", "data.num_workers",
                    "data.prefetch_factor")


log = logging.getLogger(__name__)


class TrainingError(JobError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is intact."""


def build_dataset(cfg: PretrainJob) -> Dataset:
    """The clip source: natural videos, or synthetic backgrounds (over natural clips for frame / video)."""
    m, d = cfg.model, cfg.data
    videos = None
    if d.train_list:
        from ..data.dataset import build_video_dataset

        videos = build_video_dataset(d, m.num_frames, m.img_size, seed=cfg.train.seed, train=True)
        from ..data.lists import require_files

        require_files(videos.entries, d.train_list, d.data_root, "data.data_root")  # before the teacher and model
    if d.source == "video":
        return videos
    from ..data.synthetic import BackgroundClips

    if d.num_samples != 1:
        raise ValueError("data.num_samples > 1 applies to natural videos only (data.source=video)")
    return BackgroundClips(d.background, d.epoch_size, m.num_frames, m.img_size, seed=cfg.train.seed,
                           videos=videos if d.background in ("frame", "video") else None, image_dir=d.image_dir)


@dataclass
class Meter:
    """Running sums between two log lines."""

    loss: float = 0.0
    steps: int = 0
    clips: int = 0
    wait: float = 0.0
    start: float = field(default_factory=time.perf_counter)

    def reset(self) -> None:
        self.loss, self.steps, self.clips, self.wait, self.start = 0.0, 0, 0, 0.0, time.perf_counter()


class Pretrainer:
    """Holds the run's objects; `run()` executes the plan from the resume point to the end."""

    def __init__(self, cfg: PretrainJob) -> None:
        self.cfg = cfg
        device = resolve_device(cfg.train.device)
        self.info: DistInfo = init_distributed(device.type)
        if device.type == "cuda" and self.info.enabled:
            device = torch.device("cuda", self.info.local_rank)
        self.device = device
        # One run per directory; a resume is checked against the saved config before it is overwritten.
        lock_for_resume(cfg.run.out_dir, cfg.run.resume, self.info.is_main)
        self.resume_from = find_resume(cfg.run.out_dir, cfg.run.resume)
        claim_run_dir(cfg.run.out_dir, resume=bool(cfg.run.resume), overwrite=cfg.run.overwrite,
                      resumable=self.resume_from is not None, is_main=self.info.is_main)
        self.config_changes = [] if self.resume_from is None else resume_changes(
            saved_config(cfg.run.out_dir, self.resume_from), cfg, RESUME_SAFE_KEYS, cfg.run.force_resume)
        self.run_dir = RunDir(cfg.run.out_dir, quiet=cfg.run.quiet, is_main=self.info.is_main)
        self.run_dir.save_config(cfg)
        precision = cfg.train.precision
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "fp32"
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

        self.dataset = build_dataset(cfg)
        self.plan: Plan = make_plan(cfg.train, cfg.data, len(self.dataset), self.info.world_size)
        self.teacher = build_teacher(cfg.teacher, cfg.model).to(device)
        if cfg.teacher.weights_dtype == "bfloat16":
            if resolve_autocast_dtype(cfg.teacher.dtype, device) != torch.bfloat16:
                raise ValueError(f"teacher.weights_dtype=bfloat16 needs a bf16 teacher; teacher.dtype="
                                 f"{cfg.teacher.dtype} runs in fp32 on {device.type} (set teacher.dtype=bfloat16)")
            self.teacher.keep_weights_in(torch.bfloat16)
        torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank and every run
        self.model = PretrainModel(cfg.model, target_dim=self.teacher.dim,
                                   visible_head=cfg.teacher.visible_weight > 0).to(device)
        if cfg.train.freeze_patch_embed:  # MoCo v3's frozen random patch projection (docs/fidelity.md, section 9)
            self.model.encoder.patch_embed.requires_grad_(False)
        self.optimizer = build_adamw(self.model, self.plan.peak_lr, cfg.train.weight_decay,
                                     tuple(cfg.train.betas))
        self.bank = None
        needs_motion = cfg.motion.enabled and cfg.motion.num_objects > 0 and any(
            s.mode != "original" for s in self.plan.stages)
        if needs_motion:
            from ..objects import load_bank

            self.bank = load_bank(cfg.motion.bank)
            from ..motion import resolve_backend

            where = device if cfg.motion.device == "auto" else torch.device(cfg.motion.device)
            kernel = resolve_backend(cfg.motion.kernel, where)  # a bad choice fails here; builds / checks it once
            self.run_dir.echo(f"motion: {cfg.motion.num_objects} objects per clip, composited on {where.type} by the "
                              f"{kernel} kernel")
        self.step = 0
        self.last_lr = 0.0
        self.saved_step = -1
        self.skipped_total = 0
        self.skipped_seen: set[str] = set()  # files already reported (see _report_skipped)
        self._resume()
        net: nn.Module = self.model
        teacher: nn.Module = self.teacher
        if cfg.train.compile:  # one graph each: the step passes the mask count (static shapes, no host sync)
            net = torch.compile(net, mode=cfg.train.compile_mode)
            teacher = torch.compile(teacher, mode=cfg.train.compile_mode)
        if self.info.enabled:
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=[self.info.local_rank] if device.type == "cuda" else None)
        self.net = net
        self.step_fn = MicroStep(cfg, net, teacher, self.bank, device, self.amp_dtype, self.scaler,
                                 self.plan.accum_steps)
        self.tb = self._tensorboard()

    # ---------------------------------------------------------------------------------------------------------- I/O
    def _resume(self) -> None:
        path = self.resume_from
        if path is None:
            if self.cfg.run.resume:
                self.run_dir.echo("resume: no checkpoint found, starting from scratch")
            return
        state = load_training_state(path)
        self.model.load_state_dict(load_file(str(path / "model.safetensors"), device=str(self.device)))
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.skipped_total = int(state.get("skipped_total", 0))
        if self.info.is_main:  # records written after this checkpoint are redone: drop them
            truncate_metrics(self.run_dir.file("metrics.jsonl"), self.step)
        self.run_dir.echo(f"resumed from {path} at step {self.step}")
        self.run_dir.log({"event": "resume", "step": self.step, "from": str(path)})
        if self.config_changes:
            forced = not all(any(fnmatch.fnmatchcase(k, p) for p in RESUME_SAFE_KEYS) for k, _, _ in
                             self.config_changes)
            self.run_dir.echo(f"resume: config changed ({'forced' if forced else 'safe'}): "
                              f"{format_changes(self.config_changes)}")
            self.run_dir.log({"event": "config_change", "step": self.step, "forced": forced,
                              "changes": {k: [old, new] for k, old, new in self.config_changes}})

    def _tensorboard(self):
        if not self.info.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is an optional extra
            return None
        return SummaryWriter(str(self.run_dir.file("tensorboard")))

    def save(self, stage_name: str) -> None:
        if not self.info.is_main or self.saved_step == self.step:
            return
        self.saved_step = self.step
        state = {"step": self.step, "stage": stage_name, "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                 "skipped_total": self.skipped_total}
        save_checkpoint(self.run_dir.path, self.step, self.model, self.cfg.model, self.model_meta(stage_name), state,
                        self.cfg.train.keep_last)

    def model_meta(self, stage_name: str) -> dict[str, Any]:
        """What `config.json` records beside the weights, for checkpoints and the final model alike."""
        return {"kind": "pretrain", "target_dim": self.teacher.dim, "teacher": self.cfg.teacher.kind,
                "step": self.step, "stage": stage_name}

    # --------------------------------------------------------------------------------------------------------- step
    def optimizer_step(self, batches: list[dict[str, Any]], mode: str) -> float:
        plan, info = self.plan, self.info
        pos, length, warmup = plan.schedule_position(self.step)
        lr = cosine_lr(pos, length, warmup, plan.peak_lr, self.cfg.train.min_lr)
        set_lr(self.optimizer, lr)
        losses = []
        for a, batch in enumerate(batches):
            slot = info.rank * plan.accum_steps + a
            video = batch["video"].to(self.device, non_blocking=True)
            last = a == len(batches) - 1
            sync = contextlib.nullcontext() if last or not info.enabled else self.net.no_sync()
            with sync:
                losses.append(self.step_fn(video, mode, derive_seed(self.cfg.train.seed, self.step, slot)))
        loss = all_reduce_mean(torch.stack(losses).mean().float().cpu(), info).item()
        if not torch.isfinite(torch.tensor(loss)):
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingError(f"non-finite loss ({loss}) at step {self.step}: stopping; the last good checkpoint "
                                f"in {self.run_dir.path / 'checkpoints'} is intact (lower train.lr, enable "
                                "train.clip_grad, or use train.precision=fp32)")
        if self.cfg.train.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.last_lr = lr
        return loss

    # ---------------------------------------------------------------------------------------------------------- run
    def loader(self, start_step: int) -> DataLoader:
        """One loader for the rest of the run (items keyed by (pass, index)): its workers start once and keep
        decoding across pass and stage boundaries. Workers, pinning and prefetch: `engine.loader`."""
        plan = self.plan
        sampler = RunBatchSampler(len(self.dataset), plan.items_per_slot, plan.world_size, self.info.rank,
                                  plan.accum_steps, self.cfg.train.seed, plan.total_passes, start_step)
        return DataLoader(self.dataset, batch_sampler=sampler, collate_fn=collate, **self.data_options)

    def run(self) -> Path:
        plan, cfg, rd = self.plan, self.cfg, self.run_dir
        rd.echo(f"pretraining: {plan.total_steps} steps ({plan.steps_per_pass} per pass, stages "
                f"{[(s.name, s.passes) for s in plan.stages]}), batch {cfg.train.batch_size} = "
                f"{plan.micro_batch} x {plan.world_size} ranks x {plan.accum_steps} accumulation, "
                f"peak lr {plan.peak_lr:.3g}, device {self.device}")
        self.data_options = loader_options(cfg.data, self.device)
        decoder = getattr(self.dataset, "decoder", None) or getattr(getattr(self.dataset, "videos", None), "decoder",
                                                                    None)
        rd.echo(f"data: {self.data_options['num_workers']} loader workers, "
                f"pin_memory={self.data_options['pin_memory']}" + (f", decoder {decoder} (data.decoder="
                                                                     f"{cfg.data.decoder})" if decoder else ""))
        # steady: from the first log line of this run on, so the summary also reports a rate without the first
        # interval's compile time (train.compile), loader start-up and first-call allocations
        meter, total, steady = Meter(), Meter(), None
        bar = rd.progress(total=plan.total_steps, initial=self.step, desc="pretrain")
        self.net.train()
        it = iter(self.loader(self.step))
        for pass_index in range(plan.total_passes):
            end = (pass_index + 1) * plan.steps_per_pass
            stage_index, stage = plan.stage_of_pass(pass_index)
            if self.step >= end:
                continue
            if self.step == plan.stage_start_step(stage_index):
                rd.echo(f"stage {stage.name} ({stage.mode} clips) starts at step {self.step}")
                rd.log({"event": "stage_start", "stage": stage.name, "mode": stage.mode, "step": self.step})
            while self.step < end:
                t0 = time.perf_counter()
                batches = [next(it) for _ in range(plan.accum_steps)]
                wait = time.perf_counter() - t0
                meter.wait += wait
                total.wait += wait
                total.clips += cfg.train.batch_size
                if steady is not None:
                    steady.wait += wait
                    steady.clips += cfg.train.batch_size
                skipped = sum(len(b.get("skipped", [])) for b in batches)
                if skipped and self.data_options["num_workers"]:
                    self._report_skipped(batches)
                self.skipped_total += all_reduce_sum_int(skipped, self.info)
                loss = self.optimizer_step(batches, stage.mode)
                meter.loss += loss
                meter.steps += 1
                meter.clips += cfg.train.batch_size
                bar.update(1)
                if self.step % cfg.train.log_every == 0 or self.step == end:
                    self.log(meter, stage.name, bar)
                    if steady is None:
                        steady, steady_from = Meter(), self.step
                if cfg.train.save_every and self.step % cfg.train.save_every == 0:
                    self.save(stage.name)
            if self.step == plan.stage_start_step(stage_index) + stage.passes * plan.steps_per_pass:
                self.save(stage.name)
                rd.log({"event": "stage_end", "stage": stage.name, "step": self.step})
        bar.close()
        del it  # stops the loader's workers
        if total.clips:
            elapsed = max(1e-9, time.perf_counter() - total.start)
            summary = {"event": "throughput", "step": self.step, "clips_per_s": total.clips / elapsed,
                       "data_wait": total.wait / elapsed, "num_workers": self.data_options["num_workers"]}
            line = (f"throughput: {summary['clips_per_s']:.1f} clips/s over {self.step} steps; waiting for data "
                    f"{summary['data_wait']:.0%} of the time")
            if steady is not None and steady.clips:
                steady_s = max(1e-9, time.perf_counter() - steady.start)
                summary.update(steady_from_step=steady_from, clips_per_s_steady=steady.clips / steady_s,
                               data_wait_steady=steady.wait / steady_s)
                line += f" ({summary['clips_per_s_steady']:.1f} clips/s after step {steady_from})"
            rd.log(summary)
            rd.echo(line)
        if self.info.enabled:  # DDP must leave every rank with the same weights
            divergence = max_param_divergence(self.model, self.info)
            rd.log({"event": "ddp_check", "world_size": self.info.world_size, "max_param_divergence": divergence})
        if self.info.is_main:
            save_model(self.model, cfg.model, rd.file("model"), meta=self.model_meta(plan.stages[-1].name))
            plot_loss_curve(rd.file("metrics.jsonl"), rd.file("loss_curve.png"))
        if self.tb is not None:
            self.tb.close()
        rd.echo(f"done: {self.step} steps; model in {rd.file('model')}")
        return rd.path

    def _report_skipped(self, batches: list[dict[str, Any]]) -> None:
        """Log each skipped file once from the training process: a loader worker's own warning goes to its stderr,
        not to this process's log handlers."""
        for text in (t for b in batches for t in b.get("skipped", [])):
            path = text.split(": ", 1)[0]
            if path not in self.skipped_seen:
                self.skipped_seen.add(path)
                log.warning("skipping %s", text)

    def log(self, meter: Meter, stage: str, bar) -> None:
        elapsed = max(1e-9, time.perf_counter() - meter.start)
        ns = self.cfg.data.num_samples
        record = {"step": self.step, "epoch": round(self.step / self.plan.steps_per_pass * ns, 4), "stage": stage,
                  "loss": meter.loss / max(1, meter.steps), "lr": self.last_lr,
                  "clips_per_s": meter.clips / elapsed, "data_wait": meter.wait / elapsed,
                  "skipped": self.skipped_total}
        self.run_dir.log(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                        clips_s=f"{record['clips_per_s']:.1f}", wait=f"{record['data_wait']:.0%}")
        if self.tb is not None:
            for key in ("loss", "lr", "clips_per_s", "data_wait"):
                self.tb.add_scalar(f"pretrain/{key}", record[key], self.step)
        meter.reset()


@releases_run_dir  # the run directory is locked against other processes until this returns
def pretrain(cfg: PretrainJob) -> Path:
    """Run (or resume) a whole pretraining recipe; returns the run directory."""
    trainer = Pretrainer(cfg)
    try:
        return trainer.run()
    finally:
        cleanup(trainer.info)
