"""Mask properties: exact counts, tube masks constant over time, object tokens masked at ratio m, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from smile_video.config import MaskConfig
from smile_video.masking import (
    make_mask,
    num_masked,
    object_leak,
    object_tokens,
    random_mask,
    trajectory_mask,
    tube_mask,
)

GRID = (4, 6, 6)  # T', H', W' -> 144 tokens
TUBELET, PATCH = 2, 8
N = 4 * 6 * 6


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def square_alpha(batch: int, boxes: list[tuple[int, int, int]], size: int = 16) -> torch.Tensor:
    """(B, 1, T, H, W) alpha of a `size` px square moving along per-frame top-left corners (frame, y, x)."""
    T, H, W = GRID[0] * TUBELET, GRID[1] * PATCH, GRID[2] * PATCH
    alpha = torch.zeros(batch, 1, T, H, W)
    for f, y, x in boxes:
        alpha[:, 0, f, y:y + size, x:x + size] = 1.0
    return alpha


def moving_square(batch: int = 3) -> torch.Tensor:
    return square_alpha(batch, [(f, 4 * f, 3 * f) for f in range(GRID[0] * TUBELET)])


def test_num_masked_is_whole_tubes_and_exact_for_round_ratios():
    assert num_masked((8, 14, 14), 0.9) == 8 * 176  # VideoMAE ViT-B: int(0.9 * 196) per frame
    assert num_masked((2, 5, 8), 0.8) == 2 * 32  # 0.8 * 40 is 31.999... in floating point
    assert num_masked(GRID, 0.0) == 0
    with pytest.raises(ValueError, match="mask ratio"):
        num_masked(GRID, 1.0)


@pytest.mark.parametrize("fn", [random_mask, tube_mask])
@pytest.mark.parametrize("ratio", [0.5, 0.75, 0.9])
def test_exact_counts(fn, ratio):
    m = fn(5, GRID, ratio, gen())
    assert m.shape == (5, N) and m.dtype == torch.bool
    assert (m.sum(1) == num_masked(GRID, ratio)).all()


def test_tube_mask_constant_over_time_and_varies_over_batch():
    m = tube_mask(4, GRID, 0.75, gen()).view(4, GRID[0], GRID[1] * GRID[2])
    assert (m == m[:, :1]).all()
    assert not (m[0] == m[1]).all()


def test_random_mask_is_not_a_tube_mask():
    m = random_mask(4, GRID, 0.75, gen()).view(4, GRID[0], -1)
    assert not (m == m[:, :1]).all()


@pytest.mark.parametrize("kind", ["random", "tube", "trajectory"])
def test_same_seed_same_mask_different_seed_different_mask(kind):
    cfg = MaskConfig(kind=kind, ratio=0.75)
    alpha = moving_square()
    a = make_mask(cfg, 3, GRID, TUBELET, PATCH, gen(1), alpha=alpha)
    b = make_mask(cfg, 3, GRID, TUBELET, PATCH, gen(1), alpha=alpha)
    c = make_mask(cfg, 3, GRID, TUBELET, PATCH, gen(2), alpha=alpha)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_object_tokens_follow_the_object_and_threshold():
    # a 16 px square at (y, x) = (8, 8) in frame 0 only: exactly the 2 x 2 patches at (1..2, 1..2) of tubelet 0
    alpha = square_alpha(1, [(0, 8, 8)])
    obj = object_tokens(alpha, GRID, TUBELET, PATCH, threshold=0.1).view(*GRID)
    expected = torch.zeros(GRID, dtype=torch.bool)
    expected[0, 1:3, 1:3] = True
    assert torch.equal(obj, expected)
    # shifted by 4 px, each of 3 x 3 patches is partly covered: 25 % corners, 50 % edges, 100 % centre
    alpha = square_alpha(1, [(1, 4, 4)])
    assert object_tokens(alpha, GRID, TUBELET, PATCH, 0.1).sum() == 9
    assert object_tokens(alpha, GRID, TUBELET, PATCH, 0.3).sum() == 5
    assert object_tokens(alpha, GRID, TUBELET, PATCH, 0.6).sum() == 1


@pytest.mark.parametrize("ratio", [0.5, 0.8, 0.9])
def test_trajectory_paper_masks_objects_at_ratio_and_total_exact(ratio):
    alpha = moving_square(4)
    obj = object_tokens(alpha, GRID, TUBELET, PATCH, 0.1)
    m = trajectory_mask(alpha, GRID, TUBELET, PATCH, ratio, gen(3))
    assert (m.sum(1) == num_masked(GRID, ratio)).all()
    n_obj = obj.sum(1)
    assert (n_obj > 8).all()
    assert ((m & obj).sum(1) == torch.floor(n_obj * ratio + 1e-9)).all()
    # the rest is tube masking over the non-object tokens: a masked non-object token's tube is masked at every
    # time step where the tube is not an object token, except for at most one partly masked tube
    rest = (m & ~obj).view(4, GRID[0], -1)
    free = (~obj).view(4, GRID[0], -1)
    partial = ((rest != free) & rest.any(1, keepdim=True)).any(1).sum(1)  # tubes masked somewhere, not everywhere
    assert (partial <= 1).all()


def test_trajectory_masks_follow_the_pasted_object():
    alpha = moving_square(1)
    obj = object_tokens(alpha, GRID, TUBELET, PATCH, 0.1)
    chosen = set()
    for seed in range(10):
        m = trajectory_mask(alpha, GRID, TUBELET, PATCH, 0.5, gen(seed))[0]
        assert int((m & obj).sum()) == math.floor(int(obj.sum()) * 0.5)  # ratio m along the trajectory
        assert abs(float((m & ~obj).sum() / (~obj).sum()) - 0.5) < 0.1  # and about m elsewhere
        chosen.add(tuple(torch.nonzero(m & obj).flatten().tolist()))
    assert len(chosen) > 5  # which object tokens are dropped is random


def test_trajectory_without_objects_is_a_tube_mask():
    alpha = torch.zeros(2, 0, GRID[0] * TUBELET, GRID[1] * PATCH, GRID[2] * PATCH)
    m = trajectory_mask(alpha, GRID, TUBELET, PATCH, 0.75, gen()).view(2, GRID[0], -1)
    assert (m == m[:, :1]).all() and (m.sum((1, 2)) == num_masked(GRID, 0.75)).all()
    cfg = MaskConfig(kind="trajectory", ratio=0.75)
    m2 = make_mask(cfg, 2, GRID, TUBELET, PATCH, gen(), alpha=None).view(2, GRID[0], -1)
    assert (m2 == m2[:, :1]).all()


def test_trajectory_object_covering_everything_still_exact():
    alpha = torch.ones(2, 1, GRID[0] * TUBELET, GRID[1] * PATCH, GRID[2] * PATCH)
    for variant in ("paper", "official"):
        m = trajectory_mask(alpha, GRID, TUBELET, PATCH, 0.8, gen(), variant=variant)
        assert (m.sum(1) == num_masked(GRID, 0.8)).all()


def test_trajectory_official_variant_exact_and_objects_near_ratio():
    alpha = moving_square(4)
    obj = object_tokens(alpha, GRID, TUBELET, PATCH, 0.1)
    m = trajectory_mask(alpha, GRID, TUBELET, PATCH, 0.8, gen(5), variant="official")
    assert (m.sum(1) == num_masked(GRID, 0.8)).all()
    frac = (m & obj).sum(1).float() / obj.sum(1)
    assert ((frac - 0.8).abs() < 0.15).all()
    with pytest.raises(ValueError, match="variant"):
        trajectory_mask(alpha, GRID, TUBELET, PATCH, 0.8, gen(), variant="nope")


def test_bad_alpha_shape_is_named():
    with pytest.raises(ValueError, match="alpha has"):
        trajectory_mask(torch.zeros(1, 1, 8, 40, 48), GRID, TUBELET, PATCH, 0.8, gen())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_masks_match_cpu_with_a_cpu_generator():
    alpha = moving_square(2)
    cpu = trajectory_mask(alpha, GRID, TUBELET, PATCH, 0.8, gen(7))
    cuda = trajectory_mask(alpha.cuda(), GRID, TUBELET, PATCH, 0.8, gen(7))
    assert cuda.is_cuda and torch.equal(cpu, cuda.cpu())
    assert tube_mask(2, GRID, 0.8, gen(), device="cuda").is_cuda


def test_object_leak_by_hand_and_none_for_tube_masks():
    # grid (2, 1, 2): tube 0 = tokens 0 (t=0) and 2 (t=1), tube 1 = tokens 1 and 3
    grid = (2, 1, 2)
    mask = torch.tensor([[True, True, False, True]])  # tube 0 broken (2 visible), tube 1 wholly masked
    objects = torch.tensor([[True, False, False, True]])
    leak = object_leak(mask, objects, grid)
    assert leak["masked_base"] == pytest.approx(2 / 3) and leak["visible_base"] == 0.0
    assert leak["masked_precision"] == 1.0 and leak["visible_precision"] == 0.0  # the gap at token 0 is the object
    assert leak["masked_revealed"] == 0.5 and math.isnan(leak["visible_revealed"])  # no visible object token

    g = torch.Generator().manual_seed(0)
    tube = tube_mask(8, (4, 8, 8), 0.8, g)
    objects = torch.rand(8, 256, generator=g) < 0.3
    leak = object_leak(tube, objects, (4, 8, 8))
    assert leak["masked_revealed"] == 0.0 and leak["visible_revealed"] == 0.0
    assert math.isnan(leak["masked_precision"]) and math.isnan(leak["visible_precision"])
    with pytest.raises(ValueError, match="must both be"):
        object_leak(tube, objects[:, :10], (4, 8, 8))


def test_trajectory_masks_break_tubes_where_objects_are():
    # an object sweeping along the top row: trajectory masking breaks tubes it crosses, and what the gaps reveal is
    # object far above the base rate
    B, T, S = 16, 8, 64
    alpha = torch.zeros(B, 1, T, S, S)
    for f in range(T):
        alpha[:, 0, f, :16, 8 * f:8 * f + 16] = 1.0
    g = torch.Generator().manual_seed(1)
    grid = (4, 8, 8)
    mask = trajectory_mask(alpha, grid, 2, 8, 0.8, g)
    leak = object_leak(mask, object_tokens(alpha, grid, 2, 8), grid)
    assert leak["masked_revealed"] > 0.0 and leak["visible_revealed"] > 0.5
    assert leak["visible_precision"] > 2 * leak["visible_base"] and leak["masked_precision"] > 2 * leak["masked_base"]
