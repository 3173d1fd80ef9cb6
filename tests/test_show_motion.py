"""`smile show-motion` writes a GIF and a filmstrip that look right; `smile objects build|info` on a folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from smile_video.cli import main
from smile_video.objects import ObjectBank


@pytest.fixture
def bank_folder(tmp_path):
    root = tmp_path / "objects"
    for cat, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (root / cat).mkdir(parents=True)
        arr = np.zeros((20, 20, 4), dtype=np.uint8)
        arr[3:17, 3:17] = (*colour, 255)
        Image.fromarray(arr, "RGBA").save(root / cat / "0.png")
    Image.new("RGB", (8, 8)).save(root / "blue" / "rgb.png")
    return root


def test_objects_build_and_info(bank_folder, tmp_path, capsys):
    out = tmp_path / "bank.safetensors"
    assert main(["objects", "build", str(bank_folder), "--out", str(out), "--max-side", "16"]) == 0
    captured = capsys.readouterr()
    assert "2 objects in 2 categories" in captured.out and "blue/rgb.png: no alpha" in captured.err
    bank = ObjectBank.load(out)
    assert len(bank) == 2 and max(bank.sprites[0].shape[1:]) == 14
    assert main(["objects", "info", str(out)]) == 0
    assert "2 objects, 2 categories" in capsys.readouterr().out
    assert main(["objects", "info", str(tmp_path / "missing.safetensors")]) == 1


def test_show_motion_writes_gif_and_filmstrip(bank_folder, tmp_path):
    bank = tmp_path / "bank.safetensors"
    assert main(["objects", "build", str(bank_folder), "--out", str(bank)]) == 0
    out = tmp_path / "show"
    assert main(["show-motion", "--out", str(out), "--bank", str(bank), "--background", "black", "--clips", "2",
                 "--frames", "6", "--size", "48", "--strip-frames", "3", "--quiet", "motion.size_min=12",
                 "motion.size_max=16"]) == 0
    gif = Image.open(out / "motion.gif")
    assert gif.n_frames == 6 and gif.size == (2 * 48 + 4, 48)
    strip = np.asarray(Image.open(out / "filmstrip.png").convert("RGB"))
    from smile_video.commands.show_motion import _TINTS, LABEL_WIDTH, LEGEND_HEIGHT

    assert strip.shape == (4 * 48 + 3 * 4 + LEGEND_HEIGHT, 3 * 48 + 2 * 4 + LABEL_WIDTH, 3)
    # the colour key below the rows: one swatch per object in its tint (2 objects by default)
    key = strip[4 * 48 + 3 * 4:]
    for k in range(2):
        assert (key == _TINTS[k].numpy()).all(-1).sum() >= 64, k
    labels = strip[:4 * 48 + 3 * 4, 3 * 48 + 2 * 4:]
    assert (labels < 128).all(-1).any(), "row labels are written"
    frames = [np.asarray(gif.convert("RGB")) for _ in range(1)]
    lit = frames[0].max(-1) > 100  # objects (red or blue) on black are visible in the first GIF frame
    assert 0 < lit.mean() < 0.5
    first = torch.from_numpy(strip[:48, :48].copy())
    assert ((first[..., 0] > 200) | (first[..., 2] > 200)).any()  # a red or a blue object in the first frame


def test_show_motion_needs_video_for_frame_background(tmp_path):
    assert main(["show-motion", "--out", str(tmp_path), "--background", "frame"]) == 1
