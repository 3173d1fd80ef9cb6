"""Object banks: building from folders (good, corrupt, RGB-only files), the cache file, the atlas, the default bank."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from smile_video.objects import ObjectBank, build_bank
from smile_video.objects import default as default_mod


def _rgba(w: int, h: int, box: tuple[int, int, int, int], colour=(200, 30, 30)) -> Image.Image:
    """A transparent w x h image with an opaque rectangle box = (x0, y0, x1, y1) (exclusive)."""
    arr = np.zeros((h, w, 4), dtype=np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = (*colour, 255)
    return Image.fromarray(arr, "RGBA")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "objs"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    _rgba(40, 30, (5, 4, 25, 14)).save(root / "cat" / "0.png")  # 20 x 10 object
    _rgba(600, 300, (0, 0, 600, 150), (10, 200, 10)).save(root / "cat" / "1.png")  # 600 x 150: gets capped
    _rgba(20, 20, (2, 2, 18, 18), (0, 0, 255)).save(root / "dog" / "0.png")
    Image.new("RGB", (16, 16), (9, 9, 9)).save(root / "dog" / "rgb_only.png")  # no alpha
    Image.new("RGBA", (16, 16), (9, 9, 9, 255)).save(root / "dog" / "opaque.png")  # alpha without a cut-out
    (root / "dog" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_build_skips_and_names_bad_files(folder):
    bank, skipped = build_bank(folder, max_side=64)
    assert len(bank) == 3
    assert bank.categories == ["cat", "dog"]
    assert bank.labels.tolist() == [0, 0, 1]
    reasons = dict(skipped)
    assert set(reasons) == {"dog/rgb_only.png", "dog/opaque.png", "dog/corrupt.png", "dog/notes.txt"}
    assert "no alpha" in reasons["dog/rgb_only.png"]
    assert "opaque" in reasons["dog/opaque.png"]
    assert "not an image" in reasons["dog/notes.txt"]


def test_sprites_cropped_to_alpha_and_capped(folder):
    bank, _ = build_bank(folder, max_side=64)
    assert tuple(bank.sprites[0].shape) == (4, 10, 20)  # the 20 x 10 rectangle, cropped
    assert (bank.sprites[0][3] == 255).all()
    assert tuple(bank.sprites[1].shape) == (4, 16, 64)  # 600 x 150 -> longest side 64, aspect kept
    assert tuple(bank.sprites[2].shape) == (4, 16, 16)


def test_flat_folder_uses_stems(tmp_path):
    _rgba(10, 10, (1, 1, 9, 9)).save(tmp_path / "apple.png")
    _rgba(10, 10, (0, 0, 5, 9)).save(tmp_path / "pear.png")
    bank, skipped = build_bank(tmp_path)
    assert bank.categories == ["apple", "pear"] and not skipped


def test_empty_result_is_a_clear_error(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="no usable RGBA image"):
        build_bank(tmp_path)
    with pytest.raises(FileNotFoundError):
        build_bank(tmp_path / "missing")


def test_save_load_round_trip_is_exact(folder, tmp_path):
    bank, _ = build_bank(folder, max_side=64)
    path = tmp_path / "bank.safetensors"
    bank.save(path)
    back = ObjectBank.load(path)
    assert back.categories == bank.categories and back.names == bank.names and back.max_side == 64
    assert torch.equal(back.labels, bank.labels)
    for a, b in zip(back.sprites, bank.sprites):
        assert torch.equal(a, b)


def test_load_missing_or_corrupt_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        ObjectBank.load(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="bad.safetensors"):
        ObjectBank.load(bad)


def test_atlas_fits_keeps_aspect_and_caches(folder):
    bank, _ = build_bank(folder, max_side=64)
    atlas = bank.atlas(32)
    assert atlas.shape == (3, 4, 32, 32) and atlas.dtype == torch.uint8
    ys, xs = torch.nonzero(atlas[0, 3] > 127, as_tuple=True)  # the 20 x 10 sprite fitted: 32 x 16, centred
    assert (xs.min().item(), xs.max().item()) == (0, 31)
    assert (ys.min().item(), ys.max().item()) == (8, 23)
    assert bank.atlas(32) is atlas  # cached per (size, device)
    sub = bank.subset([2, 0])
    assert len(sub) == 2 and sub.labels.tolist() == [1, 0] and sub.categories == bank.categories


def test_default_bank_split_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SMILE_VIDEO_CACHE", str(tmp_path))
    default_mod._all_bank.cache_clear()
    default_mod.default_bank.cache_clear()
    try:
        everything = default_mod.default_bank("all")
        pre, held = default_mod.default_bank("pretrain"), default_mod.default_bank("heldout")
        assert default_mod.default_bank_path().is_file()  # cached on disk
        assert len(everything) >= 1000
        assert len(pre) + len(held) == len(everything)
        assert set(pre.names).isdisjoint(held.names)
        assert 0.05 < len(held) / len(everything) < 0.15
        assert any(n.startswith("shape-") for n in everything.names)  # procedural shapes are in
        assert len(set(everything.names)) == len(everything)
        loaded = ObjectBank.load(default_mod.default_bank_path())
        assert len(loaded) == len(everything) and torch.equal(loaded.sprites[7], everything.sprites[7])
        with pytest.raises(ValueError, match="split"):
            default_mod.default_bank("train")
    finally:
        default_mod._all_bank.cache_clear()
        default_mod.default_bank.cache_clear()


def test_procedural_shapes_are_distinct():
    sprites, cats, names = default_mod.procedural_shapes(size=32)
    assert len(sprites) == 64 and len(set(names)) == 64 and len(set(cats)) == 8
    assert all(s.shape[0] == 4 and 0 < s[3].float().mean() < 255 for s in sprites)


def test_info_counts_the_categories_the_bank_holds(folder, tmp_path, capsys):
    """A subset keeps the whole category table (label ids stay comparable); `objects info` counts what it holds."""
    from smile_video.cli import main

    bank, _ = build_bank(folder, max_side=64)
    cats = bank.subset([i for i in range(len(bank)) if bank.categories[int(bank.labels[i])] == "cat"])
    assert len(cats.categories) == 2 and cats.num_categories == 1 and "1 categories" in repr(cats)
    cats.save(tmp_path / "cats.bank")
    assert main(["objects", "info", str(tmp_path / "cats.bank")]) == 0
    assert "2 objects, 1 categories" in capsys.readouterr().out
