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


@pytest.mark.parametrize("kind", ["noise", "black", "deadleaves", "image"])
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
    assert BACKGROUNDS == ("noise", "black", "deadleaves", "image", "frame", "video")
    with pytest.raises(ValueError, match="needs natural clips"):
        make_background("frame", 1, 2, 8, 8, _g())
    with pytest.raises(ValueError, match="unknown background"):
        make_background("places", 1, 2, 8, 8, _g())


def _write_images(folder, n: int = 3, size: tuple[int, int] = (48, 32)) -> list:
    """`n` distinct random RGB images (W x H = size) under folder/sub/, as png."""
    import numpy as np
    from PIL import Image

    (folder / "sub").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / "sub" / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_image_files_and_load_still(tmp_path):
    from smile_video.motion.backgrounds import _resized, image_files, load_still

    paths = _write_images(tmp_path)
    (tmp_path / "notes.txt").write_text("not an image")
    assert image_files(tmp_path) == sorted(paths)  # recursive, images only
    with pytest.raises(FileNotFoundError, match="not a folder"):
        image_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        image_files(tmp_path / "empty")
    still, skipped = load_still(paths, 16, 16, _g())
    assert still.shape == (3, 16, 16) and still.dtype == torch.uint8 and skipped == []
    # a crop of one of the files, short side resized to 16 (48 x 32 -> 24 x 16)
    full = [_resized(p, 16) for p in paths]
    assert all(f.shape == (3, 16, 24) for f in full)
    assert any(torch.equal(still, f[:, :, x:x + 16]) for f in full for x in range(9))
    assert torch.equal(still, load_still(paths, 16, 16, _g())[0])  # seeded


def test_corrupt_image_is_skipped_and_named(tmp_path):
    from smile_video.motion.backgrounds import load_still

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    good = _write_images(tmp_path, n=1)
    for seed in range(4):  # whichever file is drawn first, the good one is returned
        still, skipped = load_still([bad, *good], 8, 8, _g(seed))
        assert still.shape == (3, 8, 8)
        assert all("bad.png" in s for s in skipped)
    with pytest.raises(FileNotFoundError, match="none of the 1 images"):
        load_still([bad], 8, 8, _g())


def test_background_clips_from_an_image_folder(tmp_path):
    from smile_video.data.synthetic import BackgroundClips

    _write_images(tmp_path, n=4)
    clips = BackgroundClips("image", 8, 4, 16, seed=1, image_dir=str(tmp_path))
    item = clips[3]
    v = item["video"]
    assert v.shape == (3, 4, 16, 16) and v.dtype == torch.uint8 and item["skipped"] == []
    assert torch.equal(v, v[:, :1].expand_as(v))  # still over time
    assert torch.equal(v, BackgroundClips("image", 8, 4, 16, seed=1, image_dir=str(tmp_path))[3]["video"])
    assert not torch.equal(v, clips[4]["video"])
    # the bundled photos are not used when a folder is given
    default = BackgroundClips("image", 8, 4, 16, seed=1)[3]["video"]
    assert not torch.equal(v, default)
    (tmp_path / "sub" / "img0.png").write_bytes(b"corrupt")
    from smile_video.motion.backgrounds import _resized

    _resized.cache_clear()
    broken = BackgroundClips("image", 64, 4, 16, seed=1, image_dir=str(tmp_path))
    named = [s for i in range(64) for s in broken[i]["skipped"]]
    assert named and all("img0.png" in s for s in named)


@pytest.mark.parametrize("block", [None, 7 * 16 * 5, 1])  # default (one block); blocks of 5 rows (a partial last
def test_dead_leaves_matches_painting_the_discs_one_by_one(block, monkeypatch):  # one); one row at a time
    from smile_video.motion import backgrounds
    from smile_video.motion.backgrounds import dead_leaves

    if block is not None:
        monkeypatch.setattr(backgrounds, "_DEAD_LEAVES_BLOCK", block)
    h, w, k = 12, 16, 7
    out = dead_leaves(2, h, w, _g(5), discs=k, r_min=0.1, r_max=0.5, alpha=2.0)
    assert out.shape == (2, 3, h, w) and out.dtype == torch.uint8
    # the same draws, in the function's order, painted back to front by a plain loop
    g = _g(5)
    u = torch.rand(2, k, generator=g)
    side, a, b = max(h, w), 0.1 ** -1.0, 0.5 ** -1.0
    radius = (a + u * (b - a)) ** -1.0 * side
    assert radius.min() >= 0.1 * side - 1e-4 and radius.max() <= 0.5 * side + 1e-4
    cy = torch.rand(2, k, generator=g) * (h + side) - 0.5 * side
    cx = torch.rand(2, k, generator=g) * (w + side) - 0.5 * side
    colours = torch.randint(0, 256, (2, k + 1, 3), generator=g, dtype=torch.uint8)
    for i in range(2):
        ref = colours[i, 0].view(3, 1, 1).expand(3, h, w).clone()
        for d in range(k):
            for y in range(h):
                for x in range(w):
                    if (y + 0.5 - cy[i, d]) ** 2 + (x + 0.5 - cx[i, d]) ** 2 <= radius[i, d] ** 2:
                        ref[:, y, x] = colours[i, d + 1]
        assert torch.equal(out[i], ref)


def test_dead_leaves_default_size_matches_whole_image_masks():
    """The blocked painting gives the same images, at the recipe's size and disc count, as one (K, H, W) mask per
    image (the formula the recipe's runs up to session 12 were generated with)."""
    from smile_video.motion.backgrounds import dead_leaves

    for seed, (h, w) in [(0, (64, 64)), (1, (64, 64)), (2, (40, 72))]:
        out = dead_leaves(3, h, w, _g(seed))
        g, k, side = _g(seed), 384, max(h, w)
        u = torch.rand(3, k, generator=g)
        a, b = 0.03 ** -1.0, 0.4 ** -1.0
        radius = (a + u * (b - a)) ** -1.0 * side
        cy = torch.rand(3, k, generator=g) * (h + 0.8 * side) - 0.4 * side
        cx = torch.rand(3, k, generator=g) * (w + 0.8 * side) - 0.4 * side
        colours = torch.randint(0, 256, (3, k + 1, 3), generator=g, dtype=torch.uint8)
        ys = torch.arange(h, dtype=torch.float32).view(1, h, 1) + 0.5
        xs = torch.arange(w, dtype=torch.float32).view(1, 1, w) + 0.5
        for i in range(3):
            d2 = (ys - cy[i].view(-1, 1, 1)) ** 2 + (xs - cx[i].view(-1, 1, 1)) ** 2  # (K, H, W)
            inside = d2 <= radius[i].view(-1, 1, 1) ** 2
            top = (inside * torch.arange(1, k + 1).view(-1, 1, 1)).amax(0)  # (H, W)
            assert torch.equal(out[i], colours[i][top].permute(2, 0, 1)), (seed, i)


def test_dead_leaves_default_covers_the_image_with_many_regions():
    from smile_video.motion.backgrounds import make_background

    bg = make_background("deadleaves", 4, 2, 64, 64, _g())[:, :, 0]  # (4, 3, 64, 64)
    for img in bg:
        colours = torch.unique(img.flatten(1), dim=1).shape[1]
        assert colours > 15  # many discs visible, not one base colour with a few specks
