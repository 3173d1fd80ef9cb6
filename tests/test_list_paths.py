"""Relative paths in video lists: data_root, else the list's own folder, else (with a warning) the current directory;
inputs checked before any work; data-check's summary (issue 15, items 3 and 7)."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import write_two_class_videos

from smile_video.cli import main
from smile_video.data.lists import ListError, read_video_list, require_files


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """<root>/videos/v0..v5.mp4 and <root>/videos/{train,val}.txt whose paths are relative to their folder."""
    root = tmp_path_factory.mktemp("lists")
    videos = root / "videos"
    videos.mkdir()
    lines = write_two_class_videos(videos, 6, base=40, step=10, top=10, still_x=10, still_value=90)
    rel = [f"{line.split()[0].rsplit('/', 1)[1]} {' '.join(line.split()[1:])}" for line in lines]  # v0.mp4 12 0
    (videos / "train.txt").write_text("\n".join(rel) + "\n")
    (videos / "val.txt").write_text("\n".join(rel[:4]) + "\n")
    (videos / "labels.txt").write_text("moving\nstill\n")
    return root


def test_relative_paths_follow_data_root_else_the_lists_folder_else_the_cwd(data, tmp_path, monkeypatch, caplog):
    videos = data / "videos"
    entries = read_video_list(videos / "train.txt")  # no data_root: the list's own folder
    assert entries[0].path == str(videos / "v0.mp4")
    assert read_video_list(videos / "train.txt", data_root="/elsewhere")[0].path == "/elsewhere/v0.mp4"
    # a list elsewhere whose paths were written relative to the current directory: used, with a warning
    (tmp_path / "cwd.txt").write_text("videos/v0.mp4 12 0\nvideos/v1.mp4 12 1\n")
    monkeypatch.chdir(data)
    with caplog.at_level(logging.WARNING):
        entries = read_video_list(tmp_path / "cwd.txt")
    assert entries[0].path == "videos/v0.mp4" and "current directory" in caplog.text


def test_require_files_names_the_list_the_folder_and_the_key(data, tmp_path):
    (tmp_path / "gone.txt").write_text("a/x.mp4 0\na/y.mp4 1\n")
    entries = read_video_list(tmp_path / "gone.txt")
    with pytest.raises(ListError) as e:
        require_files(entries, tmp_path / "gone.txt", "", "probe.data_root")
    msg = str(e.value)
    assert "gone.txt" in msg and str(tmp_path) in msg and "probe.data_root" in msg and "\n" not in msg
    require_files(read_video_list(data / "videos" / "train.txt"), "train.txt", "", "probe.data_root")  # all there


def test_probe_reads_lists_relative_to_their_folder_and_checks_every_list_first(data, tmp_path, capsys):
    videos = data / "videos"
    args = ["probe", "--random-init", "--quiet", f"probe.train_list={videos / 'train.txt'}", "probe.sampling_rate=2",
            "probe.epochs=1", "model.img_size=32", "model.num_frames=4", "model.embed_dim=32", "model.depth=1",
            "model.num_heads=2"]
    (tmp_path / "val.txt").write_text("v0.mp4 12 0\nv1.mp4 12 1\n")  # relative to a folder that lacks them
    out = tmp_path / "bad"
    assert main([*args, "--out", str(out), f"probe.val_list={tmp_path / 'val.txt'}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "val.txt" in err and "probe.data_root" in err and "Traceback" not in err
    assert not out.exists()  # nothing extracted, no run directory
    loud = [a for a in args if a != "--quiet"]
    assert main([*loud, "--out", str(tmp_path / "good"), f"probe.val_list={videos / 'val.txt'}"]) == 0
    first = capsys.readouterr().err.strip().splitlines()[0]  # says which encoder, task list and run it is
    assert "random init" in first and "train.txt" in first and str(tmp_path / "good") in first


def test_extract_checks_the_list_before_loading_the_encoder(tmp_path, capsys):
    (tmp_path / "l.txt").write_text("x.mp4 0\n")
    assert main(["extract", str(tmp_path / "no_such_ckpt"), "--data", str(tmp_path / "l.txt"), "--out",
                 str(tmp_path / "f.safetensors"), "--quiet"]) == 1
    assert "--data-root" in capsys.readouterr().err


def test_data_check_resolves_like_training_names_classes_and_caps_its_lines(data, tmp_path, capsys):
    videos = data / "videos"
    report = tmp_path / "r.json"
    assert main(["data-check", str(videos / "train.txt"), "--label-map", str(videos / "labels.txt"),
                 "--num-frames", "4", "--quiet", "--json", str(report)]) == 0  # no --data-root: the list's folder
    text = capsys.readouterr().out
    assert "moving" in text and "still" in text and "list's folder" in text
    assert json.loads(report.read_text())["label_map"] == {"moving": 0, "still": 1}
    (tmp_path / "missing.txt").write_text("".join(f"m{i}.mp4 0\n" for i in range(30)))
    assert main(["data-check", str(tmp_path / "missing.txt"), "--quiet", "--max-lines", "5"]) == 1
    text = capsys.readouterr().out
    assert text.count("[bad]") == 5 and "... and 25 more" in text
