"""Run arithmetic, the step sampler and the lr schedule: pure functions of the config."""

import math

import pytest

from smile_video.config import ConfigError, DataConfig, TrainConfig
from smile_video.engine.optim import cosine_lr, param_groups, scaled_lr
from smile_video.engine.plan import make_plan
from smile_video.engine.sampler import StepBatchSampler


def test_progressive_plan_counts_effective_epochs():
    train = TrainConfig(strategy="progressive", stage1_epochs=4, stage2_epochs=2, batch_size=8, warmup_epochs=2,
                        lr=1.5e-4)
    data = DataConfig(num_samples=2)
    plan = make_plan(train, data, num_items=40, world_size=1)
    # 8 clips per step = 4 videos x 2 samples -> 10 steps per pass; a pass is 2 effective epochs
    assert plan.steps_per_pass == 10
    assert [(s.mode, s.passes) for s in plan.stages] == [("augmented", 2), ("original", 1)]
    assert plan.total_steps == 30
    assert plan.warmup_steps == 10
    assert plan.peak_lr == pytest.approx(1.5e-4 * 8 / 256)
    assert plan.stage_start_step(1) == 20


def test_accumulation_and_world_size():
    train = TrainConfig(batch_size=16, micro_batch_size=4)
    plan = make_plan(train, DataConfig(), num_items=64, world_size=2)
    assert (plan.micro_batch, plan.accum_steps, plan.world_size) == (4, 2, 2)
    with pytest.raises(ConfigError, match="batch_size"):
        make_plan(TrainConfig(batch_size=10, micro_batch_size=4), DataConfig(), num_items=64, world_size=1)
    with pytest.raises(ConfigError, match="lower train.batch_size"):
        make_plan(TrainConfig(batch_size=16), DataConfig(), num_items=8, world_size=1)


def test_restarted_schedule_warms_up_again_at_stage_two():
    train = TrainConfig(strategy="progressive", stage1_epochs=2, stage2_epochs=2, batch_size=4, warmup_epochs=1,
                        restart_schedule=True)
    plan = make_plan(train, DataConfig(), num_items=8, world_size=1)
    assert plan.schedule_position(4) == (0, 4, 2)
    assert plan.schedule_position(5) == (1, 4, 2)
    continuous = make_plan(TrainConfig(**{**train.__dict__, "restart_schedule": False}), DataConfig(), 8, 1)
    assert continuous.schedule_position(5) == (5, 8, 2)


def test_cosine_lr_shape():
    assert cosine_lr(0, 100, 10, 1.0, 0.0) == 0.0
    assert cosine_lr(5, 100, 10, 1.0, 0.0) == pytest.approx(0.5)
    assert cosine_lr(10, 100, 10, 1.0, 0.0) == pytest.approx(1.0)
    assert cosine_lr(55, 100, 10, 1.0, 0.0) == pytest.approx(0.5)
    assert cosine_lr(100, 100, 10, 1.0, 0.1) == pytest.approx(0.1)
    values = [cosine_lr(s, 100, 10, 1.0, 0.0) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert scaled_lr(1.5e-4, 512) == pytest.approx(3e-4)


def test_sampler_slots_do_not_depend_on_world_size():
    one = list(StepBatchSampler(40, items_per_slot=2, world_size=1, rank=0, accum_steps=4, seed=3, epoch=1))
    two = [list(StepBatchSampler(40, 2, world_size=2, rank=r, accum_steps=2, seed=3, epoch=1)) for r in range(2)]
    steps = 40 // 8
    for step in range(steps):
        merged = two[0][2 * step:2 * step + 2] + two[1][2 * step:2 * step + 2]
        assert merged == one[4 * step:4 * step + 4]
    flat = [i for batch in one for i in batch]
    assert sorted(flat) == sorted(set(flat)) and len(flat) == 40


def test_sampler_resumes_mid_epoch_and_changes_per_epoch():
    full = list(StepBatchSampler(30, 3, 1, 0, 1, seed=0, epoch=0))
    assert list(StepBatchSampler(30, 3, 1, 0, 1, seed=0, epoch=0, start_step=4)) == full[4:]
    other = list(StepBatchSampler(30, 3, 1, 0, 1, seed=0, epoch=1))
    assert other != full
    assert len(full) == math.floor(30 / 3)


def test_no_weight_decay_on_norms_biases_and_tokens():
    import torch
    from torch import nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.norm = nn.LayerNorm(4)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, 4))

    decay, no_decay = param_groups(M(), 0.05)
    assert decay["weight_decay"] == 0.05 and len(decay["params"]) == 1
    assert decay["params"][0].shape == (4, 4)
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0
