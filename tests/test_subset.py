"""List subsets: class balance, stratification, nesting, seeds, the file's own lines kept, and clear errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from smile_video.cli import main
from smile_video.data.budget import budget_epochs, budget_overlay, write_budget_study
from smile_video.data.lists import read_video_list
from smile_video.data.subset import subset_indices, subset_order, subset_size

# class sizes 10, 4, 1, 25: small classes run out before a balanced subset of 12 is complete
LABELS = [0] * 10 + [1] * 4 + [2] * 1 + [3] * 25


def test_balanced_takes_equal_counts_and_gives_the_rest_to_classes_that_still_have_entries():
    idx = subset_indices(LABELS, total=4, mode="balanced", seed=0)
    assert Counter(LABELS[i] for i in idx) == {0: 1, 1: 1, 2: 1, 3: 1}
    idx = subset_indices(LABELS, total=12, mode="balanced", seed=3)
    # round robin, by hand: round 1 takes one of each class (4), class 2 is then empty, rounds 2 and 3 take one of
    # classes 0, 1, 3 (6), round 4 takes two of those three (2): 12 = class 2 once, the others 3, 4, 4
    counts = Counter(LABELS[i] for i in idx)
    assert counts[2] == 1 and sorted(counts[c] for c in (0, 1, 3)) == [3, 4, 4]
    assert idx == sorted(idx) and len(set(idx)) == 12


def test_stratified_keeps_class_proportions_within_one():
    labels = [0] * 40 + [1] * 120 + [2] * 40
    idx = subset_indices(labels, fraction=0.25, mode="stratified", seed=1)
    counts = Counter(labels[i] for i in idx)
    assert len(idx) == 50
    for c, n in ((0, 40), (1, 120), (2, 40)):
        assert abs(counts[c] - 50 * n / 200) <= 1


@pytest.mark.parametrize("mode", ["balanced", "stratified"])
def test_subsets_are_nested_and_seeded(mode):
    sets = [set(subset_indices(LABELS, fraction=f, mode=mode, seed=5)) for f in (0.125, 0.25, 0.5, 1.0)]
    assert all(a <= b for a, b in zip(sets, sets[1:]))
    assert sets[-1] == set(range(len(LABELS)))
    assert subset_indices(LABELS, total=9, mode=mode, seed=5) == subset_indices(LABELS, total=9, mode=mode, seed=5)
    assert subset_indices(LABELS, total=9, mode=mode, seed=5) != subset_indices(LABELS, total=9, mode=mode, seed=6)
    order = subset_order(LABELS, mode, __import__("torch").Generator().manual_seed(0))
    assert sorted(order) == list(range(len(LABELS)))


def test_empty_or_impossible_subsets_are_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        subset_size(40, total=0)
    with pytest.raises(ValueError, match="empty subset"):
        subset_size(3, fraction=0.1)
    with pytest.raises(ValueError, match="fewer than the 50"):
        subset_size(40, total=50)
    with pytest.raises(ValueError, match="exactly one"):
        subset_size(40)
    with pytest.raises(ValueError, match="no label"):
        subset_indices([0, -1, 1], total=2)


def test_cli_subset_keeps_the_lists_own_lines(tmp_path: Path, capsys):
    src = tmp_path / "train.csv"
    src.write_text("path,label,total\n" + "".join(f"v{i}.mp4,{y},{30 + i}\n" for i, y in enumerate(LABELS)))
    out = tmp_path / "sub.csv"
    assert main(["data", "subset", str(src), "--total", "8", "--seed", "0", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "path,label,total" and len(lines) == 9
    assert set(lines[1:]) <= set(src.read_text().splitlines()[1:])
    # 8 of 4 classes: two rounds of four, but class 2 has one entry -> 1, and 2, 2, 3 for the others
    counts = Counter(e.label for e in read_video_list(out))
    assert counts[2] == 1 and sorted(counts[c] for c in (0, 1, 3)) == [2, 2, 3]
    assert main(["data", "subset", str(src), "--total", "0", "--out", str(out)]) == 1
    assert "empty" in capsys.readouterr().err


def test_budget_study_scales_epochs_and_warmup(tmp_path: Path):
    assert [budget_epochs(f, 200) for f in (0.125, 0.25, 0.5, 1.0)] == [1600, 800, 400, 200]
    with pytest.raises(ValueError, match="whole number"):
        budget_epochs(0.3, 200)
    ov = budget_overlay(0.25, 200, {"strategy": "progressive", "stage1_epochs": 100, "stage2_epochs": 100,
                                    "warmup_epochs": 40}, "l.csv", "runs/x")
    assert ov["train"] == {"stage1_epochs": 400, "stage2_epochs": 400, "warmup_epochs": 160.0}
    src = tmp_path / "k400.csv"
    src.write_text("".join(f"v{i}.mp4 {i % 4}\n" for i in range(64)))
    rows = write_budget_study(src, tmp_path / "budget", base_config="configs/pretrain/k400_vit_s_budget.yaml")
    assert [(r["entries"], r["epochs"]) for r in rows] == [(8, 1600), (16, 800), (32, 400), (64, 200)]
    lists = [set(Path(r["list"]).read_text().splitlines()) for r in rows]
    assert all(a <= b for a, b in zip(lists, lists[1:]))
    # the overlay resolves with the base config into a valid pretraining config
    from smile_video.config import PretrainJob, load_config

    cfg = load_config(PretrainJob, ["configs/pretrain/k400_vit_s_budget.yaml", rows[0]["config"]],
                      ["teacher.weights=clip.pt"])
    assert cfg.train.total_epochs == 1600 and cfg.data.train_list == rows[0]["list"]
    assert cfg.train.warmup_epochs == 320.0 and yaml.safe_load(Path(rows[0]["config"]).read_text())
