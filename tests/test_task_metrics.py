"""SEVERE task-shift metrics against hand-computed cases (and sklearn where it is installed)."""

from __future__ import annotations

import pytest
import torch

from smile_video.eval.task_metrics import average_precision, counting_metrics, mean_average_precision


def test_average_precision_by_hand():
    # ranks 1..4 = scores 0.9 .. 0.6; positives at ranks 1 and 3: precision 1/1 and 2/3, each worth recall 1/2
    ap = average_precision(torch.tensor([0.6, 0.9, 0.7, 0.8]), torch.tensor([0, 1, 1, 0]))
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # a tie is one threshold: {0.5, 0.5} holds one of the two positives (P 1/2, R 1/2), then 0.2 (P 2/3, R 1)
    ap = average_precision(torch.tensor([0.5, 0.5, 0.2]), torch.tensor([1, 0, 1]))
    assert ap == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert average_precision(torch.tensor([0.3, 0.1]), torch.tensor([1, 1])) == 1.0
    assert average_precision(torch.tensor([0.3, 0.1]), torch.tensor([0, 0])) != average_precision(
        torch.tensor([0.3, 0.1]), torch.tensor([0, 0]))  # NaN: no positive


def test_map_skips_classes_without_positives():
    scores = torch.tensor([[0.6, 0.1, 0.5], [0.9, 0.2, 0.5], [0.7, 0.3, 0.2], [0.8, 0.4, 0.1]])
    targets = torch.tensor([[0, 0, 1], [1, 0, 0], [1, 0, 1], [0, 0, 0]])
    # class 0 as the first hand case (5/6); class 1 has no positive; class 2: {0.5, 0.5} holds one of two positives
    # (P 1/2, R 1/2), then 0.2 (P 2/3, R 1) -> 7/12
    m = mean_average_precision(scores, targets)
    assert m["map_classes"] == 2 and m["map"] == pytest.approx(100 * (5 / 6 + 7 / 12) / 2)
    with pytest.raises(ValueError, match="no class has a positive"):
        mean_average_precision(scores, torch.zeros_like(targets))


def test_map_matches_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    scores = (torch.rand(60, 7, generator=g) * 8).round() / 8  # coarse scores: many ties
    targets = (torch.rand(60, 7, generator=g) < 0.3).long()
    ours = [average_precision(scores[:, k], targets[:, k]) for k in range(7)]
    theirs = [sklearn_metrics.average_precision_score(targets[:, k].numpy(), scores[:, k].numpy()) for k in range(7)]
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_counting_metrics_by_hand():
    m = counting_metrics(torch.tensor([2.0, 6.0, 9.6]), torch.tensor([4.0, 5.0, 10.0]))
    assert m["count_mae"] == pytest.approx((2 / 4 + 1 / 5 + 0.4 / 10) / 3)  # SEVERE's UCF-RC error
    assert m["mae"] == pytest.approx(3.4 / 3)
    assert m["obo"] == pytest.approx(100 * 2 / 3)  # rounded: 2 (off by 2), 6 (by 1), 10 (by 0)
    with pytest.raises(ValueError, match="> 0"):
        counting_metrics(torch.tensor([1.0]), torch.tensor([0.0]))
