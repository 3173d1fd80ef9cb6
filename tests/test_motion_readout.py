"""eval/motion_readout.py: the readout's quantities, clips and reversals are what it says, and it tells an encoder
that carries the direction of motion from one that cannot."""

import pytest
import torch
from torch import nn

from smile_video.config import PretrainJob, load_config
from smile_video.eval.motion_readout import (
    DIRECTIONAL,
    QUANTITIES,
    format_readout,
    monotonic_motion,
    motion_quantities,
    motion_readout,
    pooled_features,
    readout_clips,
)
from smile_video.motion.params import MotionParams
from smile_video.objects import default_bank

# black backgrounds: a fake encoder can find the object as the bright pixels
CFG = ["model.preset=tiny", "model.patch_size=8", "data.background=black", "motion.trajectory=official"]


@pytest.fixture(scope="module")
def setup():
    return load_config(PretrainJob, overrides=CFG), default_bank("pretrain")


class BrightnessEncoder(nn.Module):
    """Tokens from each tubelet's brightness m (the object, over black): [m, m*x, m*y] and, when `velocity`,
    [m*x*t, m*y*t] (centred grid coordinates): a mean over tokens then holds the covariance of position and time,
    i.e. the displacement. Without them every token feature is the same for a clip and its reversal, up to which
    time step it sits at, and the mean over tokens is identical for the two."""

    def __init__(self, cfg, velocity: bool) -> None:
        super().__init__()
        self.cfg, self.velocity = cfg, velocity

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        t, h, w = self.cfg.grid
        p, k = self.cfg.patch_size, self.cfg.tubelet_size
        b = x.shape[0]
        m = x.mean(dim=1) - x.mean(dim=1).amin(dim=(1, 2, 3), keepdim=True)  # (B, T, H, W), 0 on the background
        m = m.reshape(b, t, k, h, p, w, p).mean(dim=(2, 4, 6))  # (B, t, h, w)
        tt = (torch.arange(t) - (t - 1) / 2).view(1, t, 1, 1)
        yy = (torch.arange(h) - (h - 1) / 2).view(1, 1, h, 1)
        xx = (torch.arange(w) - (w - 1) / 2).view(1, 1, 1, w)
        feats = [m, m * xx, m * yy]
        if self.velocity:
            feats += [m * xx * tt, m * yy * tt]
        return torch.stack([f.expand(b, t, h, w) for f in feats], dim=-1).reshape(b, t * h * w, -1)


def test_motion_quantities_are_the_first_objects_mean_position_and_net_changes():
    t = 5
    centers = torch.zeros(2, 2, t, 2)
    centers[0, 0, :, 0] = torch.linspace(10, 50, t)  # x 10 -> 50 px on a 100 x 200 (W x H) frame
    centers[0, 0, :, 1] = 40.0
    centers[1, 0, :, 1] = torch.linspace(150, 50, t)
    angles = torch.zeros(2, 2, t)
    angles[0, 0] = torch.linspace(-90, 45, t)
    scales = torch.ones(2, 2, t)
    scales[1, 0] = torch.linspace(0.5, 1.5, t)
    scales[:, 1] = 7.0  # the second object is ignored
    params = MotionParams(torch.zeros(2, 2, dtype=torch.long), centers, angles, scales, torch.full((2, 2, 2), 20.0))
    q = motion_quantities(params, height=200, width=100)
    assert q.shape == (2, len(QUANTITIES)) and q.dtype == torch.float64
    expected = torch.tensor([[0.30, 0.20, 0.40, 0.0, 0.75, 0.0],
                             [0.0, 0.50, 0.0, -0.50, 0.0, torch.log(torch.tensor(3.0)).item()]], dtype=torch.float64)
    torch.testing.assert_close(q, expected)
    with pytest.raises(ValueError, match="object 2 out of range"):
        motion_quantities(params, 200, 100, k=2)


def test_readout_clips_pair_each_clip_with_its_reversal(setup):
    cfg, bank = setup
    video, q, cover = readout_clips(cfg, bank, 3, seed=5)
    t, h, w = cfg.model.grid
    assert video.shape == (6, 3, cfg.model.num_frames, cfg.model.img_size, cfg.model.img_size)
    assert video.dtype == torch.uint8 and q.shape == (6, len(QUANTITIES)) and cover.shape == (6, t * h * w)
    assert torch.equal(video[1::2], video[0::2].flip(2))
    directional = torch.tensor([name in DIRECTIONAL for name in QUANTITIES])
    torch.testing.assert_close(q[1::2][:, ~directional], q[0::2][:, ~directional])
    torch.testing.assert_close(q[1::2][:, directional], -q[0::2][:, directional])
    assert torch.equal(cover[1::2].reshape(3, t, h, w), cover[0::2].reshape(3, t, h, w).flip(1))
    assert (cover.sum(dim=1) > 0).all() and cover.max() <= 1
    assert video[0::2].max() > 0 and (video[0::2] == 0).any()  # an object over black
    again = readout_clips(cfg, bank, 3, seed=5)
    assert torch.equal(again[0], video) and torch.equal(again[1], q)
    assert not torch.equal(readout_clips(cfg, bank, 3, seed=6)[1], q)
    with pytest.raises(ValueError, match="object bank"):
        readout_clips(cfg, None, 3, seed=5)


def test_monotonic_motion_turns_and_grows_one_way_with_the_same_net_change():
    t = 7
    angles = torch.tensor([[[-20.0, 40.0, 80.0, 50.0, 20.0, -10.0, 10.0]]])  # up to 80, then back: net +30
    scales = torch.tensor([[[0.5, 1.5, 1.2, 1.0, 0.8, 0.6, 2.0]]])
    centers = torch.rand(1, 1, t, 2)
    params = MotionParams(torch.zeros(1, 1, dtype=torch.long), centers, angles, scales, torch.full((1, 1, 2), 9.0))
    mono = monotonic_motion(params)
    torch.testing.assert_close(mono.angles[0, 0], torch.linspace(-20.0, 10.0, t))
    torch.testing.assert_close(mono.scales[0, 0], 0.5 * 4.0 ** torch.linspace(0, 1, t))
    assert mono.angles.dtype == angles.dtype and torch.equal(mono.centers, centers)
    torch.testing.assert_close(motion_quantities(mono, 50, 50), motion_quantities(params, 50, 50))


def test_monotonic_readout_clips_keep_the_draw_and_make_every_turn_one_way(setup):
    cfg, bank = setup
    video, q, _ = readout_clips(cfg, bank, 4, seed=5)
    mono_video, mono_q, _ = readout_clips(cfg, bank, 4, seed=5, monotonic=True)
    torch.testing.assert_close(mono_q, q)  # the same net changes and positions
    assert not torch.equal(mono_video, video)  # but other frames in between
    assert torch.equal(mono_video[1::2], mono_video[0::2].flip(2))


def test_pooled_object_features_weight_the_covered_tokens_per_time_step(setup):
    cfg, _ = setup
    t, h, w = cfg.model.grid
    n = t * h * w

    class Index(nn.Module):  # token n's feature is n
        def forward_tokens(self, x):
            return torch.arange(n, dtype=torch.float32).expand(x.shape[0], n)[..., None]

    cover = torch.zeros(2, n)
    cover[0, 0] = 1.0  # step 0, token 0
    cover[0, h * w + 3] = 0.25  # step 1: tokens h*w + 3 and + 5, weights 1 : 3
    cover[0, h * w + 5] = 0.75
    video = torch.zeros(2, 3, cfg.model.num_frames, cfg.model.img_size, cfg.model.img_size, dtype=torch.uint8)
    f = pooled_features(Index(), video, cover, cfg.model.grid)
    step1 = (h * w + 3) * 0.25 + (h * w + 5) * 0.75
    assert f["object"][0, 0].item() == pytest.approx((0 + step1) / 2)  # steps 2, 3 uncovered: not counted
    assert f["object"][1, 0].item() == pytest.approx((n - 1) / 2)  # no coverage: the plain mean
    assert f["mean"][0, 0].item() == pytest.approx((n - 1) / 2)
    assert f["time"].shape == (2, t)
    with pytest.raises(ValueError, match="coverage must be"):
        pooled_features(Index(), video, cover[:, :-1], cfg.model.grid)


def test_the_readout_finds_direction_only_in_an_encoder_that_carries_it(setup):
    cfg, bank = setup
    blind = motion_readout(BrightnessEncoder(cfg.model, velocity=False), cfg, bank, clips=96, seed=3,
                           reference=False)
    aware = motion_readout(BrightnessEncoder(cfg.model, velocity=True), cfg, bank, clips=96, seed=3,
                           reference=False)
    for rep in (blind, aware):  # both see where the object is (m * x over the object's varying area: partly)
        assert rep["student"]["mean"]["position"] > 0.2 and rep["student"]["object"]["position"] > 0.5
        assert set(rep["student"]) == {"mean", "object", "time"} and "random_init" not in rep
    # the blind encoder's pooled features are the same for a clip and its reversal, whose targets are opposite
    for q in ("displacement_x", "displacement_y"):
        for pooling, floor in (("mean", 0.2), ("object", 0.5)):
            assert blind["student"][pooling][q] < 0.02
            assert aware["student"][pooling][q] > floor
    for rep in (blind, aware):  # the translation summary is the two displacements' mean
        r2 = rep["student"]["object"]
        assert r2["translation"] == pytest.approx((r2["displacement_x"] + r2["displacement_y"]) / 2)
    assert blind["student"]["object"]["translation"] < 0.02 < 0.5 < aware["student"]["object"]["translation"]
    # with per-step means a linear map subtracts the first step's position from the last's: readable either way
    assert blind["student"]["time"]["displacement_x"] > 0.25 and blind["student"]["time"]["displacement_y"] > 0.25
    rep = motion_readout(BrightnessEncoder(cfg.model, velocity=True), cfg, bank, clips=8, seed=3)
    assert set(rep["random_init"]) == {"mean", "object", "time"}
    text = format_readout(rep)
    assert rep["monotonic"] is False and "constant-speed" not in text
    assert "constant-speed" in format_readout({**rep, "monotonic": True})
    assert "random_init / object" in text and "displacement_x" in text and "translation" in text


def test_the_readout_rejects_an_encoder_of_another_clip_size(setup):
    cfg, bank = setup
    other = load_config(PretrainJob, overrides=[*CFG, "model.num_frames=4"])
    with pytest.raises(ValueError, match="reads 4 frames"):
        motion_readout(BrightnessEncoder(other.model, velocity=False), cfg, bank, clips=4)
    with pytest.raises(TypeError, match="forward_tokens"):
        motion_readout(nn.Linear(2, 2), cfg, bank, clips=4)
