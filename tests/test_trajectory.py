"""Trajectories: the paper's smoothed path (bounded per-frame motion at the default kappa) and the official variant."""

from __future__ import annotations

import pytest
import torch

from smile_video.config import MotionConfig
from smile_video.motion.trajectory import (
    OFFICIAL_SPAN,
    gaussian_kernel,
    gaussian_smooth,
    official_trajectory,
    paper_trajectory,
)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_smooth_properties():
    k = gaussian_kernel(2.0)
    assert abs(k.sum().item() - 1) < 1e-6 and torch.equal(k, k.flip(0))
    const = torch.full((2, 20, 2), 7.0)
    assert torch.allclose(gaussian_smooth(const, 3.0), const)
    x = torch.randn(1, 50, 1, generator=_g())
    y = gaussian_smooth(x, 2.0)
    r = (len(k) - 1) // 2
    manual = (x[0, 25 - r:25 + r + 1, 0] * k).sum()  # interior point: plain convolution
    assert torch.allclose(y[0, 25, 0], manual, atol=1e-6)
    assert y.std() < x.std()


def test_paper_trajectory_shape_range_and_seed():
    c = paper_trajectory(64, 16, 48, 80, 128, 8.0, _g(1))
    assert c.shape == (64, 16, 2)
    assert (c[..., 0] >= 0).all() and (c[..., 0] <= 80).all()  # convex combinations of in-frame points
    assert (c[..., 1] >= 0).all() and (c[..., 1] <= 48).all()
    assert torch.equal(c, paper_trajectory(64, 16, 48, 80, 128, 8.0, _g(1)))
    assert not torch.equal(c, paper_trajectory(64, 16, 48, 80, 128, 8.0, _g(2)))


def test_default_kappa_bounds_per_frame_displacement():
    cfg = MotionConfig()
    c = paper_trajectory(2000, 16, 224, 224, cfg.num_points, cfg.kappa, _g(3))
    step = (c[:, 1:] - c[:, :-1]).norm(dim=-1)  # (n, T - 1) pixels per frame
    assert step.max() < 0.25 * 224  # no jumps: at most a quarter of the frame between frames
    assert step.quantile(0.99) < 0.15 * 224
    assert step.mean() > 2.0  # but the objects do move
    rough = paper_trajectory(2000, 16, 224, 224, cfg.num_points, 0.5, _g(3))
    assert (rough[:, 1:] - rough[:, :-1]).norm(dim=-1).mean() > 3 * step.mean()  # the smoothing is what bounds it


def test_official_trajectory_span_and_frame():
    c = official_trajectory(500, 16, 224, 224, _g(4))
    extent = c.amax(1) - c.amin(1)  # (n, 2): both axes min-max normalised to the same span
    assert torch.allclose(extent[:, 0], extent[:, 1], atol=1e-3)
    assert extent.min() >= OFFICIAL_SPAN[0] - 1e-3 and extent.max() < OFFICIAL_SPAN[1]
    assert c.min() >= 0 and c.max() <= 224
    small = official_trajectory(500, 16, 112, 112, _g(4), scale=0.5)  # spans scale with the frame
    assert (small.amax(1) - small.amin(1)).max() < OFFICIAL_SPAN[1] / 2


def test_too_few_points_is_an_error():
    with pytest.raises(ValueError, match="num_points"):
        paper_trajectory(1, 16, 32, 32, 8, 2.0, _g())
