"""Keyframed rotation / scale: exact at the first, a random middle and the last frame, linear in between."""

from __future__ import annotations

import torch

from smile_video.motion.keyframes import interpolate_keyframes, sample_keyframe_indices, sample_keyframes


def test_exact_at_keyframes_and_linear_between():
    idx = torch.tensor([[0, 3, 9], [0, 8, 9]])
    vals = torch.tensor([[10.0, -20.0, 40.0], [1.0, 2.0, 0.5]])
    out = interpolate_keyframes(idx, vals, 10)
    assert out.shape == (2, 10)
    for r in range(2):
        assert torch.allclose(out[r, idx[r]], vals[r])
    assert torch.allclose(out[0, :4], torch.tensor([10.0, 0.0, -10.0, -20.0]))
    assert torch.allclose(out[0, 3:], torch.linspace(-20, 40, 7))
    second = out[0, 4:9] - 2 * out[0, 3:8] + out[0, 2:7]  # zero second difference away from the middle keyframe
    assert torch.allclose(second[1:], torch.zeros(4), atol=1e-5)


def test_sampled_keyframes_in_range_and_reproducible():
    g = torch.Generator().manual_seed(0)
    idx = sample_keyframe_indices(500, 16, g)
    assert (idx[:, 0] == 0).all() and (idx[:, 2] == 15).all()
    assert idx[:, 1].min() >= 1 and idx[:, 1].max() <= 14 and len(idx[:, 1].unique()) == 14
    a = sample_keyframes(500, 16, -90, 90, torch.Generator().manual_seed(1), idx)
    b = sample_keyframes(500, 16, -90, 90, torch.Generator().manual_seed(1), idx)
    assert torch.equal(a, b) and a.min() >= -90 and a.max() <= 90
    rows = torch.arange(500)
    # piecewise linear: every frame lies between its two surrounding keyframe values
    for t in (5, 10):
        left = torch.where(idx[:, 1] >= t, a[:, 0], a[rows, idx[:, 1]])
        right = torch.where(idx[:, 1] >= t, a[rows, idx[:, 1]], a[:, 15])
        lo, hi = torch.minimum(left, right), torch.maximum(left, right)
        assert ((a[:, t] >= lo - 1e-4) & (a[:, t] <= hi + 1e-4)).all()


def test_short_clips():
    g = torch.Generator().manual_seed(0)
    assert sample_keyframes(3, 1, 0.5, 1.5, g).shape == (3, 1)
    two = sample_keyframes(3, 2, 0.5, 1.5, g)
    assert two.shape == (3, 2) and ((two >= 0.5) & (two <= 1.5)).all()
