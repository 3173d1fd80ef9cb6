"""Backgrounds (paper Table 7): static kinds repeat one image, frame/video come from the natural clip, seeds."""

from __future__ import annotations

import pytest
import torch

from smile_video.motion.backgrounds import BACKGROUNDS, make_background, still_photos


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_still_photos():
    photos = still_photos()
    assert len(photos) >= 10 and all(p.dtype == torch.uint8 and p.shape[0] == 3 for p in photos)
    assert len({tuple(p.shape) for p in photos}) > 1  # their own sizes
    squares = still_photos(40)
    assert all(tuple(p.shape) == (3, 40, 40) for p in squares)


@pytest.mark.parametrize("kind", ["noise", "black", "image"])
def test_static_backgrounds(kind):
    bg = make_background(kind, 3, 5, 24, 32, _g())
    assert bg.shape == (3, 3, 5, 24, 32) and bg.dtype == torch.uint8
    assert torch.equal(bg, bg[:, :, :1].expand_as(bg))  # one image repeated over time
    assert torch.equal(bg, make_background(kind, 3, 5, 24, 32, _g()))  # same seed, same clip
    if kind == "black":
        assert bg.max() == 0
    else:
        assert bg.float().std() > 10
        assert not torch.equal(bg, make_background(kind, 3, 5, 24, 32, _g(1)))


def test_image_background_is_a_crop_of_a_photo():
    bg = make_background("image", 2, 2, 24, 32, _g(3))
    photos = still_photos(32)
    frame = bg[0, :, 0]
    found = any(torch.equal(frame, p[:, y:y + 24, :]) for p in photos for y in range(9))
    assert found


def test_frame_and_video_backgrounds():
    video = torch.randint(0, 256, (2, 3, 6, 16, 16), dtype=torch.uint8, generator=_g())
    bg = make_background("frame", 2, 6, 16, 16, _g(), video)
    for b in range(2):
        assert any(torch.equal(bg[b, :, 0], video[b, :, t]) for t in range(6))
        assert torch.equal(bg[b], bg[b, :, :1].expand_as(bg[b]))
    assert torch.equal(make_background("video", 2, 6, 16, 16, _g(), video), video)
    as_float = make_background("video", 2, 6, 16, 16, _g(), video.float() / 255)
    assert as_float.dtype == torch.uint8 and torch.equal(as_float, video)
    resized = make_background("frame", 2, 6, 8, 8, _g(), video)
    assert resized.shape == (2, 3, 6, 8, 8)


def test_errors():
    assert BACKGROUNDS == ("noise", "black", "image", "frame", "video")
    with pytest.raises(ValueError, match="needs natural clips"):
        make_background("frame", 1, 2, 8, 8, _g())
    with pytest.raises(ValueError, match="unknown background"):
        make_background("places", 1, 2, 8, 8, _g())
