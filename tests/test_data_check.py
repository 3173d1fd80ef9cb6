"""`smile data-check`: every bad entry named, frame statistics, label map, exit status."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from smile_video.cli import main
from smile_video.data.video_io import write_video


def _frames(n: int) -> np.ndarray:
    return np.full((n, 16, 16, 3), 128, np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    d = tmp_path_factory.mktemp("check")
    for name, n in [("a.mp4", 12), ("b.mp4", 20), ("c.mp4", 16), ("short.mp4", 4)]:
        write_video(d / name, _frames(n))
    (d / "corrupt.mp4").write_bytes(os.urandom(2048))
    (d / "good.csv").write_text("a.mp4 jump\nb.mp4 run\nc.mp4 run\n")
    (d / "mixed.csv").write_text("a.mp4 0\nmissing.mp4 1\ncorrupt.mp4 1\nshort.mp4 2\nb.mp4 2\n")
    return d


def test_good_list_passes_with_counts_and_label_map(root, capsys):
    out = root / "good.json"
    code = main(["data-check", str(root / "good.csv"), "--data-root", str(root), "--num-frames", "8", "--json",
                 str(out), "--quiet"])
    assert code == 0
    report = json.loads(out.read_text())
    assert (report["entries"], report["ok"], report["bad"], report["too_short"]) == (3, 3, 0, 0)
    assert report["frames"] == {"min": 12, "median": 16, "max": 20}
    assert report["label_map"] == {"jump": 0, "run": 1} and report["class_counts"] == {"0": 1, "1": 2}
    text = capsys.readouterr().out
    assert "entries: 3" in text and "run" in text and "min 12" in text


@pytest.mark.parametrize("extra", [[], ["--quick"], ["--workers", "2"]])
def test_bad_entries_are_named_and_exit_non_zero(root, capsys, extra):
    out = root / "mixed.json"
    code = main(["data-check", str(root / "mixed.csv"), "--data-root", str(root), "--num-frames", "8", "--json",
                 str(out), "--quiet", *extra])
    assert code == 1
    report = json.loads(out.read_text())
    problems = {os.path.basename(p["path"]): (p["status"], p["reason"]) for p in report["problems"]}
    assert set(problems) == {"missing.mp4", "corrupt.mp4", "short.mp4"}
    assert problems["missing.mp4"][0] == "bad" and "missing" in problems["missing.mp4"][1]
    assert problems["corrupt.mp4"][0] == "bad"
    assert problems["short.mp4"] == ("too_short", "too short: 4 frames, need at least 8")
    assert (report["ok"], report["bad"], report["too_short"]) == (2, 2, 1)
    text = capsys.readouterr().out
    for name in problems:
        assert name in text


def test_min_frames_and_list_errors(root, capsys):
    assert main(["data-check", str(root / "good.csv"), "--data-root", str(root), "--num-frames", "16",
                 "--quiet"]) == 1  # a.mp4 has 12 frames
    assert main(["data-check", str(root / "good.csv"), "--data-root", str(root), "--num-frames", "16",
                 "--min-frames", "12", "--quiet"]) == 0
    assert main(["data-check", str(root / "nope.csv"), "--quiet"]) == 1
    assert "nope.csv" in capsys.readouterr().err


def test_help_documents_the_exit_status(capsys):
    with pytest.raises(SystemExit):
        main(["data-check", "--help"])
    assert "exit status" in capsys.readouterr().out


def test_auto_decoder_says_which_it_used(root, capsys):
    from smile_video.data.decode import installed_decoders

    code = main(["data-check", str(root / "good.csv"), "--data-root", str(root), "--num-frames", "8",
                 "--decoder", "auto", "--quiet"])
    assert code == 0
    assert f"decoder: {installed_decoders()[0]} (auto)" in capsys.readouterr().out
