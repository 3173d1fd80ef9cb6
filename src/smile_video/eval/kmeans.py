"""k-means in torch (any device), seeded by a generator: k-means++ seeding, Lloyd iterations, best of `n_init` runs.

The same algorithm as ``sklearn.cluster.KMeans(init="k-means++", algorithm="lloyd")`` (tested against it on the
same data: the same partition and inertia on separated clusters); the draws differ, so labels are equal up to a
permutation, not bitwise. Runs on the features' device, so clustering a video's patch features stays on the GPU.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kmeans", "kmeans_plus_plus"]


def kmeans_plus_plus(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): x (N, C) float -> centroids (k, C), each a point of x drawn
    with probability proportional to its squared distance to the nearest centroid so far."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centroids = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(1)  # (N,)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than k: any point (duplicates give empty clusters, handled later)
            idx = int(torch.randint(n, (1,), generator=generator))
        else:
            u = torch.rand((), generator=generator).item() * total.item()
            idx = int(torch.searchsorted(d2.double().cumsum(0).cpu(), torch.tensor([u], dtype=torch.float64)))
            idx = min(idx, n - 1)
        centroids.append(x[idx])
        d2 = torch.minimum(d2, ((x - x[idx]) ** 2).sum(1))
    return torch.stack(centroids)  # (k, C)


def _assign(x: Tensor, centroids: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest centroid of every point: labels (N,) int64, squared distances (N,)."""
    d2 = torch.cdist(x, centroids) ** 2  # (N, k)
    dist, labels = d2.min(dim=1)
    return labels, dist


def kmeans(x: Tensor, k: int, generator: torch.Generator, n_init: int = 3, max_iter: int = 100,
           tol: float = 1e-4) -> tuple[Tensor, Tensor, float]:
    """Cluster x (N, C) into k groups -> (labels (N,) int64, centroids (k, C), inertia: sum of squared distances).

    Lloyd iterations from k-means++ seeds until no label changes or the centroids move less than `tol` times the
    data's mean variance (sklearn's tolerance rule), at most `max_iter`; the run of lowest inertia out of `n_init` is
    kept. An empty cluster is re-seeded at the point farthest from its centroid. `generator` draws every seed (a
    CPU generator; the arithmetic runs on x's device).
    """
    if x.dim() != 2:
        raise ValueError(f"kmeans: x must be (N, C), got {tuple(x.shape)}")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"kmeans: k={k} clusters need 1 <= k <= N={n} points")
    x = x.float()
    threshold = tol * x.var(dim=0, unbiased=False).mean().item()
    best: tuple[Tensor, Tensor, float] | None = None
    for _ in range(max(1, n_init)):
        centroids = kmeans_plus_plus(x, k, generator)
        labels = torch.full((n,), -1, dtype=torch.long, device=x.device)
        for _ in range(max_iter):
            new_labels, dist = _assign(x, centroids)
            counts = torch.bincount(new_labels, minlength=k)  # (k,)
            sums = torch.zeros_like(centroids).index_add_(0, new_labels, x)  # (k, C)
            moved = sums / counts.clamp(min=1)[:, None]
            for j in (counts == 0).nonzero().flatten().tolist():  # empty: re-seed at the farthest point
                far = int(dist.argmax())
                moved[j] = x[far]
                dist[far] = 0
            shift = ((moved - centroids) ** 2).sum().item()
            done = torch.equal(new_labels, labels) or shift <= threshold
            centroids, labels = moved, new_labels
            if done:
                break
        labels, dist = _assign(x, centroids)
        inertia = float(dist.sum())
        if best is None or inertia < best[2]:
            best = (labels, centroids, inertia)
    assert best is not None
    return best
