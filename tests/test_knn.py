"""Cosine kNN on cached features."""

from __future__ import annotations

import math

import pytest
import torch

from smile_video.eval.knn import knn_evaluate, knn_scores


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


# Training points on the unit circle (scaled: cosine kNN ignores the norm), labels by sector.
TRAIN = torch.tensor([_unit(0), _unit(10), _unit(20), _unit(90), _unit(100), _unit(180)]) * torch.tensor(
    [[1.0], [3.0], [0.5], [2.0], [1.0], [7.0]])
LABELS = torch.tensor([0, 0, 1, 1, 1, 2])


def test_k1_returns_the_nearest_label():
    queries = torch.tensor([_unit(2), _unit(19), _unit(95), _unit(170), _unit(-30)]) * 5.0
    pred = knn_scores(TRAIN, LABELS, queries, k=1, num_classes=3).argmax(1)
    assert pred.tolist() == [0, 1, 1, 2, 0]


def test_majority_and_weighted_votes_on_a_constructed_case():
    # Query at 15 deg: its 3 neighbours are 10 (class 0, sim cos5), 20 (class 1, cos5) and 0 (class 0, cos15).
    q = torch.tensor([_unit(15)])
    majority = knn_scores(TRAIN, LABELS, q, k=3, num_classes=3, vote="majority")
    assert majority.argmax(1).item() == 0
    assert majority[0, 0].floor() == 2 and majority[0, 1].floor() == 1 and majority[0, 2] == 0
    t = 0.07
    weighted = knn_scores(TRAIN, LABELS, q, k=3, num_classes=3, vote="weighted", temperature=t)
    c5, c15 = math.cos(math.radians(5)), math.cos(math.radians(15))
    expected = torch.tensor([[math.exp(c5 / t) + math.exp(c15 / t), math.exp(c5 / t), 0.0]])
    torch.testing.assert_close(weighted, expected, rtol=1e-5, atol=1e-5)


def test_majority_tie_is_broken_by_similarity():
    # k=2 at 12 deg: neighbours 10 (class 0) and 20 (class 1), one vote each; 10 deg is closer.
    scores = knn_scores(TRAIN, LABELS, torch.tensor([_unit(12)]), k=2, num_classes=3, vote="majority")
    assert scores.argmax(1).item() == 0


def test_evaluate_reports_each_k_and_rejects_bad_input():
    queries = torch.tensor([_unit(2), _unit(95), _unit(178)])
    res = knn_evaluate(TRAIN, LABELS, queries, torch.tensor([0, 1, 2]), ks=[1, 6], vote="majority")
    assert res[1]["top1"] == pytest.approx(100.0)
    assert set(res) == {1, 6} and res[6]["top1"] < 100.0  # k = all 6 points: class 1 (3 of them) outvotes
    with pytest.raises(ValueError, match="vote"):
        knn_scores(TRAIN, LABELS, queries, k=1, num_classes=3, vote="mean")
    with pytest.raises(ValueError, match="do not match"):
        knn_scores(TRAIN, LABELS, torch.zeros(2, 3), k=1, num_classes=3)


def test_centring_keeps_what_clips_share_along_their_common_vector():
    # Every feature is a large shared vector c = (10, 0) plus a small part; the class is in the part along c (+1 or
    # -1), the part across c is noise. Plain cosine turns the part along c into a length and ignores it, so the noise
    # decides; minus the training mean, the class part is a direction again.
    train = torch.tensor([[11.0, 0.5], [11.0, -0.5], [9.0, 0.5], [9.0, -0.5]])
    labels = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[11.0, 0.6], [9.0, 0.4]])  # a class-0 and a class-1 query
    plain = knn_scores(train, labels, query, k=1, num_classes=2).argmax(1)
    centred = knn_scores(train, labels, query, k=1, num_classes=2, centre=True).argmax(1)
    assert plain.tolist() == [1, 0]
    assert centred.tolist() == [0, 1]
    # by hand: cosine on both sides minus the training mean, the weighted vote of the one neighbour
    mean = train.mean(0)
    sim = torch.nn.functional.normalize(query - mean, dim=1) @ torch.nn.functional.normalize(train - mean, dim=1).T
    expected = torch.zeros(2, 2).scatter_(1, labels[sim.argmax(1)][:, None], (sim.max(1).values / 0.07).exp()[:, None])
    torch.testing.assert_close(knn_scores(train, labels, query, k=1, num_classes=2, centre=True), expected)
    # views are averaged before the mean is taken: (N, V, D) with two identical views gives the (N, D) result
    two = knn_scores(train[:, None].expand(4, 2, 2), labels, query[:, None].expand(2, 2, 2), k=1, num_classes=2,
                     centre=True)
    torch.testing.assert_close(two, expected)
