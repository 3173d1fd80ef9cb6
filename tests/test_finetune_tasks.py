"""`smile finetune` on SEVERE's task-shift protocols: multi-label (BCE, mAP) and repetition counting (regression,
normalised MAE), end to end on tiny mp4 files; list formats and their errors."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import write_two_class_videos

from smile_video.cli import main
from smile_video.data.lists import ListError
from smile_video.data.task_lists import read_count_list, read_multilabel_list
from smile_video.eval.finetune_tasks import train_targets

TINY = ["model.img_size=32", "model.num_frames=4", "model.embed_dim=32", "model.depth=2", "model.num_heads=2"]
FAST = ["finetune.epochs=1", "finetune.batch_size=2", "finetune.warmup_epochs=0", "finetune.sampling_rate=2",
        "finetune.test_clips=1", "finetune.test_crops=1", "finetune.randaug_n=0", "finetune.reprob=0"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("task_videos")
    lines = write_two_class_videos(root, 4, base=40, step=10, top=10, still_x=10, still_value=90)
    return root, [ln.split()[0] for ln in lines]


def test_list_formats_and_errors(tmp_path):
    ml = tmp_path / "ml.txt"
    ml.write_text("a.mp4 0,3\n# comment\nb.mp4\nc.mp4 2\n")
    entries, t = read_multilabel_list(ml, data_root="/r", num_classes=5)
    assert [e.path for e in entries] == ["/r/a.mp4", "/r/b.mp4", "/r/c.mp4"]
    assert t.tolist() == [[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 0, 1, 0, 0]]
    js = tmp_path / "ml.jsonl"
    js.write_text('{"path": "a.mp4", "labels": [1, 2]}\n')
    assert read_multilabel_list(js)[1].tolist() == [[0, 1, 1]]
    csv = tmp_path / "ml.csv"
    csv.write_text("path,labels\na.mp4,1;4\n")
    assert read_multilabel_list(csv)[1].tolist() == [[0, 1, 0, 0, 1]]
    with pytest.raises(ListError, match=r"ml.txt:1: label 3 is outside the class list"):
        read_multilabel_list(ml, num_classes=3)
    bad = tmp_path / "bad.txt"
    bad.write_text("a.mp4 x,1\n")
    with pytest.raises(ListError, match="bad.txt:1: label 'x' is not a class id"):
        read_multilabel_list(bad)
    counts = tmp_path / "c.txt"
    counts.write_text("a.mp4 4\nb.mp4 2.5\n")
    assert read_count_list(counts)[1].tolist() == [4.0, 2.5]
    counts.write_text("a.mp4 4\nb.mp4 0\n")
    with pytest.raises(ListError, match="c.txt:2: a repetition count must be a finite number > 0"):
        read_count_list(counts)
    # multi-label targets are smoothed towards s / K; classification ones are the smoothed one-hot
    y = train_targets("multilabel", torch.tensor([[1.0, 0.0, 1.0, 0.0]]), torch.tensor([0]), 4, 0.2)
    torch.testing.assert_close(y, torch.tensor([[0.85, 0.05, 0.85, 0.05]]))


def _finetune(tmp_path, train, val, *extra):
    out = tmp_path / "run"
    rc = main(["finetune", "--random-init", "--out", str(out), "--quiet", f"finetune.train_list={train}",
               f"finetune.val_list={val}", *FAST, *TINY, *extra])
    return rc, out


def test_multilabel_finetune_reports_map(videos, tmp_path):
    root, paths = videos
    lst = tmp_path / "train.txt"
    lst.write_text("".join(f"{p} {i % 2},{2 + i % 3}\n" for i, p in enumerate(paths)))  # 5 classes, 2 labels each
    rc, out = _finetune(tmp_path, lst, lst, "finetune.task=multilabel", "finetune.num_classes=6")
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["num_classes"] == 6 and 0 < res["final"]["map"] <= 100
    assert res["final"]["map_classes"] == 5 and res["final"]["num_videos"] == 4  # class 5 has no positive
    # a label outside the class list stops before any work, naming the file and line
    rc, _ = _finetune(tmp_path / "x", lst, lst, "finetune.task=multilabel", "finetune.num_classes=3")
    assert rc == 1


def test_counting_finetune_reports_normalised_mae(videos, tmp_path):
    root, paths = videos
    counts = [3, 5, 4, 6]
    lst = tmp_path / "train.txt"
    lst.write_text("".join(f"{p} {c}\n" for p, c in zip(paths, counts)))
    rc, out = _finetune(tmp_path, lst, lst, "finetune.task=counting", "finetune.mixup=0", "finetune.cutmix=0")
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["num_classes"] == 1
    final = res["final"]
    # the head starts at the mean count (4.5) and one tiny epoch barely moves it: about the constant predictor's error
    constant = sum(abs(4.5 - c) / c for c in counts) / 4
    assert final["count_mae"] == pytest.approx(constant, abs=0.1) and 0 <= final["obo"] <= 100
    rc, _ = _finetune(tmp_path / "y", lst, lst, "finetune.task=counting")  # mixup left on: a config error
    assert rc == 2
