"""The arithmetic of a pretraining run, derived once: batch layout, stages, steps, warmup and learning rate.

Epochs are the paper's *effective* epochs (appendix F.3): with multiple sampling (`data.num_samples` clips per decoded
video) one pass over the video list counts as `num_samples` epochs. Batch sizes count clips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import ConfigError, DataConfig, TrainConfig
from .optim import scaled_lr


@dataclass(frozen=True)
class Stage:
    name: str
    mode: str  # augmented | original | mixed
    passes: int  # passes over the dataset


@dataclass(frozen=True)
class Plan:
    world_size: int
    accum_steps: int
    micro_batch: int  # clips per rank per micro-step
    items_per_slot: int  # dataset items per micro-step (micro_batch / num_samples)
    steps_per_pass: int
    stages: tuple[Stage, ...]
    warmup_steps: int
    peak_lr: float
    restart_schedule: bool

    @property
    def total_passes(self) -> int:
        return sum(s.passes for s in self.stages)

    @property
    def total_steps(self) -> int:
        return self.total_passes * self.steps_per_pass

    def stage_of_pass(self, pass_index: int) -> tuple[int, Stage]:
        """(stage index, stage) of a global pass index."""
        for i, stage in enumerate(self.stages):
            if pass_index < stage.passes:
                return i, stage
            pass_index -= stage.passes
        raise IndexError("pass index beyond the plan")

    def stage_start_step(self, stage_index: int) -> int:
        return sum(s.passes for s in self.stages[:stage_index]) * self.steps_per_pass

    def schedule_position(self, step: int) -> tuple[int, int, int]:
        """(step within the schedule, schedule length, warmup) for the lr at global `step`."""
        if not self.restart_schedule:
            return step, self.total_steps, self.warmup_steps
        i, stage = self.stage_of_pass(min(step // self.steps_per_pass, self.total_passes - 1))
        start = self.stage_start_step(i)
        return step - start, stage.passes * self.steps_per_pass, self.warmup_steps


def make_plan(train: TrainConfig, data: DataConfig, num_items: int, world_size: int) -> Plan:
    """Derive the run's plan; every inconsistency is a ConfigError naming the keys involved."""
    ns = data.num_samples
    micro = train.micro_batch_size or train.batch_size // world_size
    if micro < 1 or train.batch_size % (micro * world_size):
        raise ConfigError(f"train.batch_size={train.batch_size} must be a multiple of micro batch {micro} x "
                          f"{world_size} processes")
    if micro % ns:
        raise ConfigError(f"the micro batch ({micro} clips) must be a multiple of data.num_samples={ns}")
    accum = train.batch_size // (micro * world_size)
    items_per_step = train.batch_size // ns
    steps_per_pass = num_items // items_per_step
    if steps_per_pass < 1:
        raise ConfigError(f"the dataset has {num_items} items but one optimizer step needs {items_per_step} "
                          f"(train.batch_size={train.batch_size} / data.num_samples={ns}); lower train.batch_size")

    def passes(epochs: int) -> int:
        return max(1, math.ceil(epochs / ns))

    if train.strategy == "progressive":
        stages = (Stage("stage1", "augmented", passes(train.stage1_epochs)),
                  Stage("stage2", "original", passes(train.stage2_epochs)))
    elif train.strategy == "mixed":
        stages = (Stage("mixed", "mixed", passes(train.epochs)),)
    else:
        stages = (Stage("single", "augmented", passes(train.epochs)),)
    warmup = round(train.warmup_epochs / ns * steps_per_pass)
    return Plan(world_size=world_size, accum_steps=accum, micro_batch=micro, items_per_slot=micro // ns,
                steps_per_pass=steps_per_pass, stages=stages, warmup_steps=warmup,
                peak_lr=scaled_lr(train.lr, train.batch_size), restart_schedule=train.restart_schedule)
