"""eval/pretext.py: the pretext-task diagnostics measure what they claim, on an oracle student with known answers."""

import pytest
import torch
from torch import nn

from smile_video.config import PretrainJob, load_config
from smile_video.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from smile_video.eval.pretext import (
    PretextBatch,
    make_pretext_batch,
    neighbour_mean,
    neighbour_oracle,
    pretext_report,
    shuffle_time,
    token_errors,
)
from smile_video.objects import default_bank
from smile_video.teachers import build_teacher
from smile_video.teachers.pixel import normalized_pixel_targets

CFG = ["model.preset=tiny", "teacher.kind=pixel", "teacher.target_norm=none", "data.background=black",
       "motion.trajectory=official", "mask.kind=trajectory", "mask.ratio=0.75"]


class PixelOracle(nn.Module):
    """Predicts every masked token's pixel target from the (normalised) clip it is given: exact on the true clip."""

    def __init__(self, tubelet: int, patch: int) -> None:
        super().__init__()
        self.tubelet, self.patch = tubelet, patch

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
        t = normalized_pixel_targets((x * std + mean).clamp(0, 1), self.tubelet, self.patch)  # (B, N, D)
        return t[mask].reshape(x.shape[0], -1, t.shape[-1])


@pytest.fixture(scope="module")
def setup():
    cfg = load_config(PretrainJob, overrides=CFG)
    teacher = build_teacher(cfg.teacher, cfg.model)
    return cfg, teacher, default_bank("pretrain")


def test_shuffle_time_permutes_whole_tubelets_and_never_keeps_the_order():
    g = torch.Generator().manual_seed(0)
    video = torch.arange(3 * 8, dtype=torch.float32).view(3, 1, 8, 1, 1).expand(3, 2, 8, 2, 2).contiguous()
    out = shuffle_time(video, 2, g)
    for b in range(3):
        firsts = out[b, 0, ::2, 0, 0]
        assert torch.equal(out[b, 0, 1::2, 0, 0], firsts + 1)  # frames stay together within a tubelet
        assert sorted(firsts.tolist()) == video[b, 0, ::2, 0, 0].tolist()  # a permutation of the tubelets
        assert not torch.equal(firsts, video[b, 0, ::2, 0, 0])  # never the identity
    with pytest.raises(ValueError, match="multiple of the tubelet"):
        shuffle_time(video[:, :, :7], 2, g)


def test_oracle_student_has_zero_loss_and_shuffling_hurts_only_moving_objects(setup):
    cfg, teacher, bank = setup
    m = cfg.model
    oracle = PixelOracle(m.tubelet_size, m.patch_size)
    rep = pretext_report(oracle, teacher, bank, cfg, clips=8, seed=3)
    assert rep["student"]["all"] < 1e-6  # token order of predictions and targets line up
    # black static background: shuffled time changes nothing there, but the objects move
    assert rep["shuffled"]["background"] < rep["shuffled"]["object"]
    assert rep["shuffle_penalty"]["object"] > 0.1
    assert rep["position_mean"]["all"] > 0.1 and rep["zero"]["all"] > 0.1
    assert 0.0 < rep["targets"]["object_share"] < 1.0


class PixelEncoderModel(PixelOracle):
    """The oracle with an encoder whose tokens are the clip's own pixel targets (what a pixel teacher asks for)."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg.tubelet_size, cfg.patch_size)
        oracle = self

        class Encoder(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.cfg = cfg

            def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:  # every token visible
                return oracle(x, torch.ones(x.shape[0], cfg.num_tokens, dtype=torch.bool))

        self.encoder = Encoder()


def test_encoder_target_r2_reads_an_encoder_that_carries_its_targets(setup):
    from smile_video.models import PretrainModel

    cfg, teacher, bank = setup
    assert "encoder_target_r2" not in pretext_report(PixelOracle(cfg.model.tubelet_size, cfg.model.patch_size),
                                                     teacher, bank, cfg, clips=4, seed=3)  # no encoder: no entry
    # 32 clips: 2,048 tokens to fit 1,536-d pixel targets
    rep = pretext_report(PixelEncoderModel(cfg.model), teacher, bank, cfg, clips=32, seed=3)["encoder_target_r2"]
    assert rep["student"] > 0.97 and rep["random_init"] < 0.6  # tokens that are the targets (ridge shrinks a little)
    # a student whose encoder is the random init drawn under the report's seed reads exactly what the reference does
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        from smile_video.models import VideoViTEncoder

        same = VideoViTEncoder(cfg.model, use_mean_pooling=False)
    model = PretrainModel(cfg.model, target_dim=teacher.dim).eval()
    model.encoder.load_state_dict(same.state_dict())
    rep = pretext_report(model, teacher, bank, cfg, clips=4, seed=3)["encoder_target_r2"]
    assert rep["student"] == pytest.approx(rep["random_init"], abs=1e-12)


def test_pretext_batch_objects_are_the_covered_tokens(setup):
    cfg, teacher, bank = setup
    pb = make_pretext_batch(cfg, teacher, bank, 4, seed=1)
    n = cfg.model.num_tokens
    assert pb.mask.shape == pb.objects.shape == (4, n) and pb.targets.shape[:2] == (4, n)
    # black background: an empty token's pixel target is all zero; tokens under the coverage threshold hold
    # slivers of objects at most, object tokens hold objects
    energy = pb.targets.abs().mean(-1)
    assert bool((energy[pb.objects] > 1e-3).float().mean() > 0.9)
    assert float(energy[pb.objects].mean()) > 3 * float(energy[~pb.objects].mean())
    errs = token_errors(PixelOracle(cfg.model.tubelet_size, cfg.model.patch_size), pb.video, pb.mask, pb.targets)
    assert errs.shape == (4, int(pb.mask[0].sum())) and float(errs.max()) < 1e-6


def test_pretext_verb_reports_a_run_and_checks_its_inputs(tmp_path, capsys):
    from smile_video.cli import main
    from smile_video.engine.pretrain import pretrain

    run = tmp_path / "run"
    pretrain(load_config(PretrainJob, overrides=[
        "model.preset=tiny", "model.img_size=32", "model.num_frames=4", "mask.ratio=0.75", "data.epoch_size=8",
        "train.strategy=single", "train.epochs=1", "train.batch_size=4", "run.quiet=true", f"run.out_dir={run}"]))
    out = tmp_path / "pretext.json"
    assert main(["pretext", str(run), "--clips", "4", "--readout", "4", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "shuffle penalty" in text and "neighbour_oracle" in text and "encoder tokens -> targets R^2" in text
    assert "random_init / object" in text and "displacement_x" in text  # the motion readout's table
    import json

    rep = json.loads(out.read_text())
    assert set(rep) >= {"student", "shuffled", "position_mean", "objectness_oracle", "neighbour_oracle", "zero",
                        "targets", "motion_readout"}
    assert set(rep["motion_readout"]["student"]) == {"mean", "object", "time"}
    assert rep["motion_readout"]["monotonic"] is False
    assert main(["pretext", str(run), "--clips", "4", "--readout", "4", "--readout-monotonic"]) == 0
    assert "constant-speed rotation" in capsys.readouterr().out
    assert main(["pretext", str(run), "--readout", "-1"]) == 1
    assert "--readout must be >= 0" in capsys.readouterr().err
    assert main(["pretext", str(run), "--readout-monotonic"]) == 1
    assert "--readout-monotonic needs --readout" in capsys.readouterr().err
    assert main(["pretext", str(tmp_path)]) == 1  # not a run directory: one clear line, non-zero exit
    assert "no config.yaml" in capsys.readouterr().err


def test_neighbour_mean_is_the_mean_of_the_visible_3x3_block_of_the_same_time_step():
    g = torch.Generator().manual_seed(0)
    grid, B, D = (2, 3, 4), 3, 5
    targets = torch.randn(B, 24, D, generator=g)
    mask = torch.rand(B, 24, generator=g) < 0.7
    mean, has = neighbour_mean(targets, mask, grid)
    tg, mk = targets.view(B, *grid, D), mask.view(B, *grid)
    for b in range(B):
        for t in range(2):
            for y in range(3):
                for x in range(4):
                    near = [tg[b, t, j, i] for j in range(max(0, y - 1), min(3, y + 2))
                            for i in range(max(0, x - 1), min(4, x + 2)) if not mk[b, t, j, i]]
                    n = (t * 3 + y) * 4 + x
                    assert bool(has[b, n]) == bool(near)
                    if near:
                        assert torch.allclose(mean[b, n], torch.stack(near).mean(0), atol=1e-6)
    with pytest.raises(ValueError, match="grid"):
        neighbour_mean(targets, mask, (2, 4, 4))


def test_neighbour_oracle_is_exact_where_a_token_equals_its_neighbours_and_falls_back_to_the_position_mean():
    g = torch.Generator().manual_seed(1)
    grid, B, D, N = (2, 3, 4), 4, 6, 24

    def batch(seed: int) -> PretextBatch:  # one target vector per (clip, time step): neighbours carry the answer
        gg = torch.Generator().manual_seed(seed)
        targets = torch.randn(B, 2, 1, D, generator=gg).expand(B, 2, 12, D).reshape(B, N, D)
        mask = torch.ones(B, N, dtype=torch.bool)
        mask[:, [5, 17]] = False  # one visible token per time step: every masked token of rows 0-2 has it near
        return PretextBatch(torch.zeros(B, 3, 4, 24, 32, dtype=torch.uint8), mask, targets, torch.zeros_like(mask))

    ref, pb = batch(2), batch(3)
    pos_mean = torch.randn(1, N, D, generator=g)
    pred = neighbour_oracle(ref, pb, pos_mean, grid)
    near, has = neighbour_mean(pb.targets, pb.mask, grid)
    assert torch.allclose(pred[has], pb.targets[has], atol=1e-5)  # a = 1 fits the reference exactly
    assert (~has).any() and torch.equal(pred[~has], pos_mean.expand_as(pred)[~has])
