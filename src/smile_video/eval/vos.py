"""Unsupervised video object segmentation (paper appendix B, Table 10; SIGMA's protocol): cluster a frozen encoder's
space-time patch features of one video with k-means, match the clusters to the ground-truth masks with the
Hungarian algorithm, and score the matched segmentation by mIoU.

Per video with G ground-truth labels (background + its objects):

1. features (F, h, w, C): one feature per patch of every frame (`vos_features.video_patch_features`), L2-normalised
   when asked (cosine k-means);
2. k-means (`kmeans.kmeans`) over all F * h * w patches of the video with K clusters: **clustering** K = G,
   **overclustering** a larger K;
3. the (h, w) cluster map of each frame is upsampled (nearest) to the masks' size;
4. matching: ``hungarian`` assigns clusters to labels one to one maximising the summed IoU
   (``scipy.optimize.linear_sum_assignment``); with K > G the clusters left over match nothing and their pixels count
   as wrong for every label. ``majority`` (an option) gives every cluster the label it overlaps most (many to one);
5. IoU of every label over all annotated frames of the video (pixels marked ``ignore`` excluded), mIoU = their mean
   (background included); the dataset's mIoU is the mean over videos.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .kmeans import kmeans

__all__ = ["IGNORE", "MATCHINGS", "confusion", "match_clusters", "label_iou", "cluster_video"]

IGNORE = -1  # mask value of pixels that are not scored (DAVIS' void label 255 is read as this)
MATCHINGS = ("hungarian", "majority")


def confusion(pred: Tensor, gt: Tensor, k: int, g: int) -> Tensor:
    """pred: (...,) cluster ids in [0, k); gt: (...,) labels in [0, g) or IGNORE -> (k, g) int64 pixel counts."""
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    keep = gt != IGNORE
    p, y = pred[keep].long(), gt[keep].long()
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= g):
        raise ValueError(f"ground-truth labels must be in [0, {g}) or {IGNORE}")
    return torch.bincount(p * g + y, minlength=k * g).view(k, g)


def _iou_matrix(conf: Tensor) -> Tensor:
    """(k, g) confusion -> (k, g) IoU of cluster i taken as label j."""
    inter = conf.double()
    union = conf.sum(1, keepdim=True).double() + conf.sum(0, keepdim=True).double() - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def match_clusters(conf: Tensor, method: str = "hungarian") -> Tensor:
    """(k, g) confusion -> (k,) int64: the label each cluster stands for, -1 for none (module docstring, step 4)."""
    if method not in MATCHINGS:
        raise ValueError(f"matching must be one of {MATCHINGS}, got {method!r}")
    k = conf.shape[0]
    if method == "majority":
        return conf.argmax(dim=1)
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(_iou_matrix(conf).cpu().numpy(), maximize=True)
    mapping = torch.full((k,), -1, dtype=torch.long)
    mapping[torch.as_tensor(rows, dtype=torch.long)] = torch.as_tensor(cols, dtype=torch.long)
    return mapping


def label_iou(conf: Tensor, mapping: Tensor) -> Tensor:
    """IoU per ground-truth label (g,) float64 of the segmentation that gives cluster i the label mapping[i]."""
    g = conf.shape[1]
    matched = mapping >= 0
    assigned = torch.zeros(g, g, dtype=torch.float64)  # (predicted label, true label) pixel counts
    assigned.index_add_(0, mapping[matched], conf[matched].double())
    inter = assigned.diagonal()
    predicted = assigned.sum(1)  # pixels given label j (unmatched clusters give none)
    truth = conf.sum(0).double()  # pixels of label j
    union = predicted + truth - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


def cluster_video(features: Tensor, masks: Tensor, generator: torch.Generator, overcluster_k: int = 0,
                  matching: str = "hungarian", normalize: bool = True, n_init: int = 3,
                  max_iter: int = 100) -> dict[str, dict[str, object]]:
    """Score one video: clustering (K = G, the labels present: background + objects) and, with `overcluster_k` > 0,
    overclustering (K = max(overcluster_k, G)).

    features: (F, h, w, C) patch features of the annotated frames; masks: (F, H, W) int64 label ids (0 =
    background) or IGNORE; the cluster maps are upsampled (nearest) to (H, W). Label ids need not be contiguous: the
    ids present are scored, in increasing order.
    Returns {"clustering" / "overclustering": {"k", "miou", "iou": per label id present}}.
    """
    if features.dim() != 4 or masks.dim() != 3 or features.shape[0] != masks.shape[0]:
        raise ValueError(f"features must be (F, h, w, C) and masks (F, H, W) over the same frames, got "
                         f"{tuple(features.shape)} and {tuple(masks.shape)}")
    n_frames, h, w, c = features.shape
    masks = masks.cpu().long()
    valid = masks != IGNORE
    ids, inverse = torch.unique(masks[valid], return_inverse=True)  # the label ids present, increasing
    if len(ids) < 2:
        raise ValueError(f"the masks hold {len(ids)} label(s) {ids.tolist()}: background and at least one object "
                         "are needed")
    dense = torch.full_like(masks, IGNORE)
    dense[valid] = inverse  # (F, H, W) labels 0 .. G - 1
    g = len(ids)
    x = features.reshape(-1, c).float()  # (F h w, C)
    if normalize:
        x = F.normalize(x, dim=1)
    settings = {"clustering": g} | ({"overclustering": max(overcluster_k, g)} if overcluster_k > 0 else {})
    out: dict[str, dict[str, object]] = {}
    for name, k in settings.items():
        k = min(k, x.shape[0])
        labels, _, _ = kmeans(x, k, generator, n_init=n_init, max_iter=max_iter)  # (F h w,)
        maps = labels.view(n_frames, 1, h, w).float()
        maps = F.interpolate(maps, size=masks.shape[-2:], mode="nearest").long()[:, 0].cpu()  # (F, H, W)
        conf = confusion(maps, dense, k, g)
        iou = label_iou(conf, match_clusters(conf, matching))  # (G,)
        out[name] = {"k": k, "miou": float(iou.mean()), "iou": dict(zip(map(str, ids.tolist()), iou.tolist()))}
    return out
