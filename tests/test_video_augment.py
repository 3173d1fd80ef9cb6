"""Random erasing for finetuning (VideoMAE's reprob 0.25, pixel mode, one box per clip, the same on every frame)."""

from __future__ import annotations

import math

import pytest
import torch

from smile_video.eval.video_augment import erase_box, random_erase_batch

FILL = 7.0  # the clips are constant 7; standard-normal noise never reaches it (P(|z| >= 7) ~ 1e-12)


def erased_boxes(out: torch.Tensor) -> list[tuple[int, int, int, int] | None]:
    """Per clip of out (B, C, T, H, W): the (top, left, h, w) of the changed pixels, asserting they form one
    rectangle, the same in every channel and frame; None where nothing changed."""
    boxes = []
    for clip in out:
        changed = clip != FILL  # (C, T, H, W)
        if not changed.any():
            boxes.append(None)
            continue
        first = changed[0, 0]  # (H, W)
        assert (changed == first).all(), "the erased region must be identical in every channel and frame"
        rows, cols = first.any(1).nonzero().view(-1), first.any(0).nonzero().view(-1)
        top, left = int(rows[0]), int(cols[0])
        h, w = int(rows[-1]) - top + 1, int(cols[-1]) - left + 1
        assert first[top:top + h, left:left + w].all() and int(first.sum()) == h * w, "not one filled rectangle"
        boxes.append((top, left, h, w))
    return boxes


def within_bounds(h: int, w: int, height: int, width: int) -> None:
    """h = round(sqrt(A r)), w = round(sqrt(A / r)) for an area A in [0.02, 1/3] of the frame and r in [0.3, 1/0.3]:
    the intervals that the rounding leaves for A and r must meet those ranges."""
    frame = height * width
    assert (h + 0.5) * (w + 0.5) >= 0.02 * frame and (h - 0.5) * (w - 0.5) <= frame / 3, (h, w)
    assert (h + 0.5) / (w - 0.5) >= 0.3 and (h - 0.5) / (w + 0.5) <= 1 / 0.3, (h, w)
    assert 1 <= h < height and 1 <= w < width


def test_erased_region_is_one_box_identical_across_frames_within_the_bounds():
    video = torch.full((200, 3, 4, 48, 64), FILL)  # non-square frames
    out = random_erase_batch(video, torch.Generator().manual_seed(0), prob=1.0)
    assert torch.equal(video, torch.full_like(video, FILL)), "the input must not be modified"
    fractions = []
    for box in erased_boxes(out):
        assert box is not None, "prob 1 always erases"
        top, left, h, w = box
        within_bounds(h, w, 48, 64)
        fractions.append(h * w / (48 * 64))
    assert min(fractions) < 0.05 and max(fractions) > 0.25  # the whole area range is used
    noise = out[out != FILL]
    assert abs(noise.mean().item()) < 0.05 and abs(noise.std().item() - 1.0) < 0.05  # standard normal
    top, left, h, w = erased_boxes(out[:1])[0]
    region = out[0, :, :, top:top + h, left:left + w]  # (C, T, h, w)
    assert not torch.equal(region[:, 0], region[:, 1]), "noise is drawn per frame (VideoMAE's pixel mode)"


def test_erase_box_bounds_at_full_resolution():
    g = torch.Generator().manual_seed(1)
    aspects = []
    for _ in range(500):
        top, left, h, w = erase_box(224, 224, g, prob=1.0)
        within_bounds(h, w, 224, 224)
        assert 0 <= top <= 224 - h and 0 <= left <= 224 - w
        aspects.append(math.log(h / w))
    assert min(aspects) < math.log(0.4) and max(aspects) > math.log(1 / 0.4)  # log-uniform over [0.3, 1/0.3]


def test_prob_zero_leaves_the_clip_unchanged_and_draws_nothing():
    video = torch.randn(4, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(5)
    before = g.get_state()
    assert torch.equal(random_erase_batch(video, g, prob=0.0), video)
    assert torch.equal(g.get_state(), before)


def test_same_seed_same_result_and_erase_rate_follows_prob():
    video = torch.full((2000, 1, 2, 8, 8), FILL)
    a = random_erase_batch(video, torch.Generator().manual_seed(3), prob=0.25)
    b = random_erase_batch(video, torch.Generator().manual_seed(3), prob=0.25)
    c = random_erase_batch(video, torch.Generator().manual_seed(4), prob=0.25)
    assert torch.equal(a, b) and not torch.equal(a, c)
    erased = sum(box is not None for box in erased_boxes(a))
    assert 440 <= erased <= 560  # 2000 x 0.25 = 500, binomial std 19


def test_bad_inputs_are_rejected():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="probability"):
        random_erase_batch(torch.zeros(1, 3, 2, 8, 8), g, prob=1.5)
    with pytest.raises(ValueError, match="float video"):
        random_erase_batch(torch.zeros(1, 3, 2, 8, 8, dtype=torch.uint8), g, prob=0.5)
