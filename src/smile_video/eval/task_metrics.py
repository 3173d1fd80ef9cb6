"""Metrics of SEVERE's task-shift protocols (paper Table 6 / Table 14): multi-label mAP (Charades) and repetition
counting error (UCFRep). Mean per-class accuracy (FX-S1 / UB-S1) is `linear_probe.classification_metrics`'s
``mean_class``.

- **Average precision** of one class: scores sorted descending, one operating point per distinct score (ties are one
  threshold), ``AP = sum_n (R_n - R_{n-1}) P_n`` — the step-wise area under the precision-recall curve, the
  definition of ``sklearn.metrics.average_precision_score`` (tested against it). **mAP** is the mean over the classes
  that have at least one positive (a class without positives has no recall and is left out; the count is reported).
- **Counting**: ``count_mae`` = mean over videos of ``|pred - count| / count`` (the mean absolute error normalised by
  the true count, what SEVERE reports as UCF-RC's "mean error"; lower is better), ``mae`` the plain mean absolute
  error and ``obo`` the off-by-one accuracy (percent of videos with ``|round(pred) - count| <= 1``). Predictions are
  not rounded for the errors.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["average_precision", "mean_average_precision", "counting_metrics"]


def average_precision(scores: Tensor, targets: Tensor) -> float:
    """AP of one class. scores: (N,) float; targets: (N,) bool / {0, 1}. NaN when there is no positive."""
    if scores.dim() != 1 or targets.shape != scores.shape:
        raise ValueError(f"scores and targets must both be (N,), got {tuple(scores.shape)}, {tuple(targets.shape)}")
    y = targets.bool()
    positives = int(y.sum())
    if positives == 0:
        return float("nan")
    s, order = scores.double().sort(descending=True)  # (N,)
    tp = y[order].double().cumsum(0)  # (N,) true positives above each rank
    last = torch.ones_like(s, dtype=torch.bool)  # the last rank of each group of equal scores: one threshold each
    last[:-1] = s[1:] != s[:-1]
    tp = tp[last]
    seen = torch.arange(1, len(s) + 1, dtype=torch.float64)[last]  # predicted positives at each threshold
    precision = tp / seen
    recall = tp / positives
    step = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.float64))
    return float((step * precision).sum())


def mean_average_precision(scores: Tensor, targets: Tensor) -> dict[str, float]:
    """scores: (N, K) (sigmoid probabilities or logits: only the order counts); targets: (N, K) {0, 1} multi-hot.
    -> {"map": percent over classes with a positive, "map_classes": how many}."""
    if scores.dim() != 2 or targets.shape != scores.shape:
        raise ValueError(f"scores and targets must both be (N, K), got {tuple(scores.shape)}, {tuple(targets.shape)}")
    aps = [average_precision(scores[:, k], targets[:, k]) for k in range(scores.shape[1])]
    valid = [a for a in aps if a == a]  # not NaN
    if not valid:
        raise ValueError("mAP: no class has a positive video in this set")
    return {"map": 100.0 * sum(valid) / len(valid), "map_classes": float(len(valid))}


def counting_metrics(pred: Tensor, count: Tensor) -> dict[str, float]:
    """pred: (N,) predicted counts; count: (N,) true counts (> 0). -> {"count_mae", "mae", "obo"}."""
    if pred.dim() != 1 or count.shape != pred.shape:
        raise ValueError(f"pred and count must both be (N,), got {tuple(pred.shape)}, {tuple(count.shape)}")
    count = count.double()
    if (count <= 0).any():
        raise ValueError("counting_metrics: every true count must be > 0 (the error is normalised by it)")
    err = (pred.double() - count).abs()  # (N,)
    return {"count_mae": float((err / count).mean()), "mae": float(err.mean()),
            "obo": 100.0 * float(((pred.double().round() - count).abs() <= 1).double().mean())}
