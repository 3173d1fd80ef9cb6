"""Annotation lists: every supported format, data_root, label maps, folders, and errors that name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smile_video.data.lists import (
    ListError,
    VideoEntry,
    class_counts,
    is_frame_folder,
    label_map,
    read_label_map,
    read_video_list,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_videomae_two_three_and_four_columns(tmp_path):
    two = _write(tmp_path / "two.csv", "a/x.mp4 3\n\n/abs/y.mp4 0\n")
    assert read_video_list(two, data_root="/root") == [VideoEntry("/root/a/x.mp4", 3), VideoEntry("/abs/y.mp4", 0)]
    three = _write(tmp_path / "three.txt", "frames/v1 120 7\n")
    assert read_video_list(three) == [VideoEntry(str(tmp_path / "frames/v1"), 7, None, 120)]  # the list's folder
    four = _write(tmp_path / "four.csv", "v.mp4 0 -1 2\nf/dir 1 300 5\n")
    assert read_video_list(four, "r") == [VideoEntry("r/v.mp4", 2, 0, -1), VideoEntry("r/f/dir", 5, 1, 300)]


def test_videomae_class_names_get_sorted_ids(tmp_path):
    lst = _write(tmp_path / "names.csv", "a.mp4 zebra\nb.mp4 ant\nc.mp4 zebra\n")
    entries = read_video_list(lst)
    assert [e.label for e in entries] == [1, 0, 1]
    assert label_map(entries) == {"ant": 0, "zebra": 1}
    assert class_counts(entries) == {0: 1, 1: 2}


@pytest.mark.parametrize("text, line, words", [
    ("a.mp4 1\nb.mp4 1 2 3 4\n", 2, "5 fields"),
    ("a.mp4 1\nb.mp4 x 3\n", 2, "total must be an integer"),
    ("a.mp4 one two three\n", 1, "start must be an integer"),
])
def test_videomae_errors_name_file_and_line(tmp_path, text, line, words):
    lst = _write(tmp_path / "bad.csv", text)
    with pytest.raises(ListError, match=rf"bad\.csv:{line}: .*{words}"):
        read_video_list(lst)


def test_csv_and_tsv_with_flexible_headers(tmp_path):
    csv = _write(tmp_path / "l.csv", "Video,Class,extra\nclips/a.mp4,run,foo\nclips/b.mp4,jump,bar\n")
    entries = read_video_list(csv, data_root="/d")
    assert [(e.path, e.label, e.label_name) for e in entries] == [("/d/clips/a.mp4", 1, "run"),
                                                                  ("/d/clips/b.mp4", 0, "jump")]
    tsv = _write(tmp_path / "l.tsv", "path\tlabel\tstart\ttotal\nmy video.mp4\t4\t2\t10\nb.mp4\t1\t\t\n")
    assert read_video_list(tsv) == [VideoEntry(str(tmp_path / "my video.mp4"), 4, 2, 10),
                                    VideoEntry(str(tmp_path / "b.mp4"), 1)]
    unlabelled = _write(tmp_path / "u.csv", "filename\nx.mp4\n")
    assert read_video_list(unlabelled) == [VideoEntry(str(tmp_path / "x.mp4"), -1)]


def test_csv_errors(tmp_path):
    with pytest.raises(ListError, match="without a header"):
        read_video_list(_write(tmp_path / "nohdr.csv", "a.mp4,1\n"))
    with pytest.raises(ListError, match=r"l\.csv:3: .*more fields"):
        read_video_list(_write(tmp_path / "l.csv", "path,label\na.mp4,1\nb.mp4,2,9\n"))
    with pytest.raises(ListError, match=r"l2\.csv:2: start must be an integer"):
        read_video_list(_write(tmp_path / "l2.csv", "path,label,start\na.mp4,1,abc\n"))


def test_jsonl_with_label_map_file(tmp_path):
    lst = _write(tmp_path / "l.jsonl", "\n".join(json.dumps(r) for r in [
        {"video": "a.mp4", "label": "cat"}, {"video": "b.mp4", "label": "dog", "total_frames": 9}]) + "\n")
    names = _write(tmp_path / "classes.txt", "dog\ncat\n")
    entries = read_video_list(lst, data_root="root", label_names=names)
    assert [(e.path, e.label, e.total) for e in entries] == [("root/a.mp4", 1, None), ("root/b.mp4", 0, 9)]
    with pytest.raises(ListError, match=r"\['dog'\] are not in the label map"):
        read_video_list(lst, label_names={"cat": 0})
    with pytest.raises(ListError, match=r"l2\.jsonl:2: not valid JSON"):
        read_video_list(_write(tmp_path / "l2.jsonl", '{"path": "a"}\n{oops\n'))
    with pytest.raises(ListError, match=r"l3\.jsonl:1: no video path"):
        read_video_list(_write(tmp_path / "l3.jsonl", '{"label": 1}\n'))


def test_read_label_map_formats(tmp_path):
    assert read_label_map(_write(tmp_path / "a.txt", "b\n\na\n")) == {"b": 0, "a": 1}
    assert read_label_map(_write(tmp_path / "b.txt", "3 riding a bike\n1 surfing\n")) == {"riding a bike": 3,
                                                                                          "surfing": 1}
    assert read_label_map(_write(tmp_path / "c.csv", "x,5\ny,2\n")) == {"x": 5, "y": 2}
    assert read_label_map(_write(tmp_path / "d.json", '{"x": 1}')) == {"x": 1}
    with pytest.raises(ListError, match="appears twice"):
        read_label_map(_write(tmp_path / "e.txt", "x\nx\n"))


def test_label_map_rejects_one_name_with_two_ids():
    with pytest.raises(ListError, match="two ids"):
        label_map([VideoEntry("a", 0, label_name="x"), VideoEntry("b", 1, label_name="x")])


def test_folder_with_class_subfolders_and_frame_folders(tmp_path):
    root = tmp_path / "data"
    for rel in ["walk/b.mp4", "walk/a10.mp4", "walk/a2.avi", "swim/x.mkv", "swim/notes.txt"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    frames = root / "swim" / "clip_frames"
    frames.mkdir()
    (frames / "img_00001.jpg").write_bytes(b"")
    assert is_frame_folder(frames) and not is_frame_folder(root / "walk")
    entries = read_video_list(root)
    got = [(Path(e.path).relative_to(root).as_posix(), e.label, e.label_name) for e in entries]
    assert got == [("swim/clip_frames", 0, "swim"), ("swim/x.mkv", 0, "swim"), ("walk/a2.avi", 1, "walk"),
                   ("walk/a10.mp4", 1, "walk"), ("walk/b.mp4", 1, "walk")]


def test_flat_folder_is_unlabelled_and_mixed_folder_fails(tmp_path):
    (tmp_path / "v1.mp4").write_bytes(b"")
    (tmp_path / "v2.webm").write_bytes(b"")
    assert [(Path(e.path).name, e.label) for e in read_video_list(tmp_path)] == [("v1.mp4", -1), ("v2.webm", -1)]
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "v3.mp4").write_bytes(b"")
    with pytest.raises(ListError, match="class sub-folders and some at the top level"):
        read_video_list(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ListError, match="holds no videos"):
        read_video_list(empty)


def test_missing_and_empty_lists(tmp_path):
    with pytest.raises(ListError, match="does not exist"):
        read_video_list(tmp_path / "nope.csv")
    with pytest.raises(ListError, match="is empty"):
        read_video_list(_write(tmp_path / "e.csv", "\n \n"))
