"""k-nearest-neighbour classification on cached features, with cosine similarity.

Two votes: `weighted` (each neighbour adds exp(similarity / temperature) to its class, as in Wu et al. 2018 and
DINO, temperature 0.07) and `majority` (each neighbour adds 1; ties go to the class with the larger summed
similarity).

`centre=True` (the default of `smile knn`, ``probe.knn_centre``) subtracts the training features' mean from training
and query features before the L2 normalisation (SimpleShot's CL2N, Wang et al. 2019). Without it (DINO's plain
cosine), a component c shared by every clip, which a pretrained student's pooled features are mostly made of
(docs/fidelity.md, section 19), turns how clips differ along c into a length, which the cosine ignores, and leaves
the rest to decide the neighbours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .linear_probe import classification_metrics

__all__ = ["knn_scores", "knn_evaluate"]


@torch.no_grad()
def knn_scores(
    train_feats: Tensor,
    train_labels: Tensor,
    query_feats: Tensor,
    k: int,
    num_classes: int,
    vote: str = "weighted",
    temperature: float = 0.07,
    chunk: int = 1024,
    centre: bool = False,
) -> Tensor:
    """Class scores of each query from its k most cosine-similar training features.

    train_feats: (N, D); train_labels: (N,) int64; query_feats: (Q, D) -> scores (Q, num_classes), float32.
    (N, V, D) or (Q, V, D) features are averaged over views first. `centre`: both sides minus the training
    features' mean (over N, after the view average) before the cosine.
    """
    if vote not in ("weighted", "majority"):
        raise ValueError(f"knn vote must be 'weighted' or 'majority', got {vote!r}")
    if k < 1:
        raise ValueError(f"knn k must be >= 1, got {k}")
    train = train_feats.float().mean(1) if train_feats.dim() == 3 else train_feats.float()  # (N, D)
    query = query_feats.float().mean(1) if query_feats.dim() == 3 else query_feats.float()  # (Q, D)
    if train.shape[0] != train_labels.shape[0] or train.shape[1] != query.shape[1]:
        raise ValueError(f"knn: train feats {tuple(train.shape)}, train labels {tuple(train_labels.shape)} and "
                         f"query feats {tuple(query.shape)} do not match")
    k = min(k, train.shape[0])
    if centre:
        mean = train.mean(0)  # (D,)
        train, query = train - mean, query - mean
    train = F.normalize(train, dim=1)
    labels = train_labels.long().to(train.device)
    out = []
    for q in query.split(chunk):
        sim = F.normalize(q.to(train.device), dim=1) @ train.T  # (q, N)
        top_sim, top_idx = sim.topk(k, dim=1)  # (q, k)
        votes = (top_sim / temperature).exp() if vote == "weighted" else torch.ones_like(top_sim)
        scores = torch.zeros(q.shape[0], num_classes, device=train.device)
        scores.scatter_add_(1, labels[top_idx], votes)  # (q, C)
        if vote == "majority":  # break ties by summed similarity (kept below one vote)
            tie = torch.zeros_like(scores).scatter_add_(1, labels[top_idx], top_sim + 1.0)
            scores = scores + tie / (2.0 * k + 1.0)
        out.append(scores)
    return torch.cat(out)


def knn_evaluate(
    train_feats: Tensor,
    train_labels: Tensor,
    val_feats: Tensor,
    val_labels: Tensor,
    ks: list[int] | tuple[int, ...] = (20,),
    num_classes: int | None = None,
    vote: str = "weighted",
    temperature: float = 0.07,
    centre: bool = False,
) -> dict[int, dict[str, float]]:
    """Top-1 / top-5 / mean per-class accuracy (percent) of kNN for each k: {k: metrics}."""
    c = int(num_classes if num_classes is not None else int(max(train_labels.max(), val_labels.max())) + 1)
    return {k: classification_metrics(knn_scores(train_feats, train_labels, val_feats, k, c, vote, temperature,
                                                 centre=centre), val_labels, c) for k in ks}
