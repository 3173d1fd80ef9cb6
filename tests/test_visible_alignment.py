"""teacher.visible_weight: a second loss on the visible tokens (UMT's unmasked-token alignment): the model's visible
head, the loss it adds, its checkpoints and its config errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from smile_video.checkpoint import init_classifier, load_encoder, load_model
from smile_video.config import ConfigError, PretrainJob, load_config
from smile_video.engine.pretrain import Pretrainer, pretrain
from smile_video.engine.step import MicroStep
from smile_video.masking import random_mask
from smile_video.models import PretrainModel

# 32 px, 4 frames: a 2 x 2 x 2 token grid; the embedded teacher's stride-16 grid matches it.
TINY = ["model.preset=tiny", "model.img_size=32", "model.num_frames=4", "mask.ratio=0.75", "data.epoch_size=8",
        "train.batch_size=4", "train.lr=1e-3", "train.log_every=1", "run.quiet=true", "teacher.target_norm=layernorm",
        "train.strategy=single"]


def job(out: Path, *extra: str) -> PretrainJob:
    return load_config(PretrainJob, overrides=[*TINY, f"run.out_dir={out}", *extra])


def test_visible_head_predicts_the_visible_tokens_from_the_encoder_output():
    cfg = job(Path("unused")).model
    torch.manual_seed(0)
    model = PretrainModel(cfg, target_dim=6, visible_head=True).eval()
    x = torch.randn(3, 3, cfg.num_frames, cfg.img_size, cfg.img_size)
    mask = random_mask(3, cfg.grid, 0.75, torch.Generator().manual_seed(1))
    with torch.no_grad():
        pred, own = model(x, mask, True)
        alone = model(x, mask)
        by_hand = model.visible_head(model.encoder(x, mask))  # the encoder's visible tokens, before the decoder
    n_vis = int((~mask[0]).sum())
    assert pred.shape == (3, mask.shape[1] - n_vis, 6) and own.shape == (3, n_vis, 6)
    assert torch.equal(pred, alone)  # the masked prediction does not depend on asking for the visible one
    torch.testing.assert_close(own, by_hand)
    with pytest.raises(ValueError, match="visible head"):
        PretrainModel(cfg, target_dim=6)(x, mask, True)


def test_the_loss_adds_the_weighted_visible_error(tmp_path):
    # With the visible head at zero its predictions are 0, so its MSE is the mean square of the visible tokens'
    # layernorm targets, 1 up to the norm's eps: the two losses of the same step differ by the weight.
    base = job(tmp_path / "run", "teacher.visible_weight=2.5")
    trainer = Pretrainer(base)
    net = trainer.model
    assert net.visible_head is not None
    torch.nn.init.zeros_(net.visible_head.weight)
    torch.nn.init.zeros_(net.visible_head.bias)
    video = torch.randint(0, 256, (4, 3, 4, 32, 32), dtype=torch.uint8)
    steps = {}
    for w in (0.0, 2.5):
        cfg = dataclasses.replace(base, teacher=dataclasses.replace(base.teacher, visible_weight=w))
        step = MicroStep(cfg, net, trainer.teacher, trainer.bank, torch.device("cpu"), None, trainer.scaler)
        net.zero_grad(set_to_none=True)
        steps[w] = float(step(video.clone(), "single", seed=7))
        head_grad = net.visible_head.weight.grad
        assert (head_grad is None) == (w == 0.0)  # only the weighted loss reaches the head
    assert steps[2.5] - steps[0.0] == pytest.approx(2.5, rel=1e-3)


def test_a_run_with_the_visible_loss_saves_its_head_and_its_encoder_loads_everywhere(tmp_path):
    out = tmp_path / "run"
    pretrain(job(out, "teacher.visible_weight=1.0", "train.epochs=1"))
    sd = load_file(str(out / "model" / "model.safetensors"))
    assert {"visible_head.weight", "visible_head.bias"} <= set(sd)
    model, _, _ = load_model(out / "model")
    assert isinstance(model, PretrainModel) and model.visible_head is not None
    assert torch.equal(model.visible_head.weight, sd["visible_head.weight"])
    encoder, _ = load_encoder(out / "model")  # the head is not part of the encoder
    assert not any(k.startswith("visible_head") for k in encoder.state_dict())
    init_classifier(out / "model", num_classes=3)  # finetuning reads it like any pretraining checkpoint
    plain = tmp_path / "plain"
    pretrain(job(plain, "train.epochs=1"))
    assert not any(k.startswith("visible_head") for k in load_file(str(plain / "model" / "model.safetensors")))


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_a_bad_visible_weight_is_refused_by_name(value):
    with pytest.raises(ConfigError, match="teacher.visible_weight"):
        job(Path("unused"), f"teacher.visible_weight={value}")
