"""`smile data-reencode`: short side, keyframe spacing, same frames, a list that trains, bad files named."""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from smile_video.cli import main
from smile_video.data.decode import PyAVReader, decode_frames
from smile_video.data.lists import read_video_list
from smile_video.data.reencode import output_size
from smile_video.data.video_io import write_video


def test_output_size_keeps_aspect_never_upscales_and_stays_even():
    assert output_size(640, 480, 320) == (426, 320)
    assert output_size(480, 854, 320) == (320, 570)
    assert output_size(200, 100, 320) == (200, 100)
    assert output_size(641, 481, 0) == (640, 480)


def test_reencode_a_list(tmp_path, capsys):
    src = tmp_path / "src"
    g = np.random.default_rng(0)
    blocks = g.integers(0, 255, (50, 6, 8, 3), dtype=np.uint8)
    frames = np.kron(blocks, np.ones((1, 16, 16, 1), dtype=np.uint8))  # (50, 96, 128, 3): each frame its own blocks
    write_video(src / "a" / "x.mp4", frames, fps=25, gop=250)  # one keyframe
    write_video(src / "b" / "y.mp4", frames[:30], fps=25, gop=250)
    (src / "bad.mp4").write_bytes(os.urandom(2000))
    (src / "train.csv").write_text("a/x.mp4 0\nbad.mp4 1\nb/y.mp4 1\n")
    out = tmp_path / "out"
    code = main(["data-reencode", str(src / "train.csv"), "--data-root", str(src), "--out", str(out),
                 "--short-side", "48", "--gop", "8", "--crf", "12", "--quiet"])
    assert code == 1  # the bad file is named, the others are done
    err = capsys.readouterr().err
    assert "could not read" in err and "bad.mp4" in err
    entries = read_video_list(out / "list.jsonl", str(out))
    assert [os.path.relpath(e.path, out) for e in entries] == ["a/x.mp4", "b/y.mp4"]
    assert [e.label for e in entries] == [0, 1]
    with PyAVReader(entries[0].path) as reader:
        assert reader.num_frames == 50 and max(np.diff(reader.key_frames)) <= 8 and reader.fps == 25
        small = reader.get_frames([0, 17, 49])
    assert small.shape == (3, 48, 64, 3)
    original = decode_frames(src / "a" / "x.mp4", range(50)).permute(0, 3, 1, 2).float()  # (50, 3, 96, 128)
    expected = torch.nn.functional.interpolate(original, size=(48, 64), mode="bilinear", antialias=True)
    errors = (small.permute(0, 3, 1, 2).float()[:, None] - expected[None]).abs().mean(dim=(2, 3, 4))  # (3, 50)
    assert errors.argmin(dim=1).tolist() == [0, 17, 49]  # the same frames, in order
    assert errors.min(dim=1).values.max() < 12
    mtime = os.path.getmtime(entries[0].path)
    assert main(["data-reencode", str(src / "train.csv"), "--data-root", str(src), "--out", str(out), "--quiet",
                 "--short-side", "48", "--gop", "8"]) == 1
    assert os.path.getmtime(entries[0].path) == mtime  # kept: a re-run resumes
    assert json.loads((out / "list.jsonl").read_text().splitlines()[0])["path"] == "a/x.mp4"
