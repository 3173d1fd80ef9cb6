"""What `smile finetune` learns (``finetune.task``): targets, head size, loss, per-view scores and metrics.

- **classification**: one class per video; head K; target the label-smoothed one-hot (mixed); soft cross entropy;
  view scores softmax; top-1, top-5, mean per-class accuracy.
- **multilabel**: several class ids per video; head K; target the multi-hot, smoothed ``y (1 - s) + s / K`` (mixed);
  BCE with logits; view scores sigmoid; mAP.
- **counting**: a repetition count per video; head 1; target the count; L1 loss (the count's absolute error); view
  scores the predicted count; normalised MAE (``|pred - count| / count``), MAE, off-by-one accuracy.

Mixup / CutMix mix multi-hot targets with the same lambda as the pixels (as timm does for BCE); counts are not mixed
(``finetune.mixup`` and ``cutmix`` must be 0 for counting). The counting head's bias starts at the mean train count
(its weights at the usual small init), so training starts from the constant predictor instead of 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.lists import VideoEntry
from .linear_probe import classification_metrics
from .mixup import smooth_one_hot, soft_cross_entropy
from .task_metrics import counting_metrics, mean_average_precision

__all__ = ["TASKS", "PRIMARY_METRIC", "read_task_list", "num_outputs", "init_head", "train_targets", "task_loss",
           "view_scores", "task_metrics", "describe"]

TASKS = ("classification", "multilabel", "counting")
PRIMARY_METRIC = {"classification": "top1", "multilabel": "map", "counting": "count_mae"}


def read_task_list(task: str, path: str, data_root: str, num_classes: int = 0) -> tuple[list[VideoEntry], Tensor]:
    """(entries, targets): (N,) int64 labels, (N, K) float32 multi-hot or (N,) float32 counts."""
    if task == "classification":
        from ..data.lists import ListError, read_video_list

        entries = read_video_list(path, data_root=data_root)
        labels = torch.tensor([e.label for e in entries], dtype=torch.long)
        if (labels < 0).any():
            raise ValueError("finetuning needs labelled lists: some entries have no label (-1)")
        if num_classes and (labels >= num_classes).any():
            bad = next(e for e in entries if e.label >= num_classes)
            raise ListError(f"{path}: label {bad.label} of {bad.path} is outside the class list "
                            f"(finetune.num_classes={num_classes}: ids 0..{num_classes - 1})")
        return entries, labels
    if task == "multilabel":
        from ..data.task_lists import read_multilabel_list

        return read_multilabel_list(path, data_root, num_classes)
    if task == "counting":
        from ..data.task_lists import read_count_list

        return read_count_list(path, data_root)
    raise ValueError(f"finetune.task must be one of {TASKS}, got {task!r}")


def num_outputs(task: str, targets: list[Tensor], num_classes: int = 0) -> int:
    """The head's size: 1 for counting; `num_classes` when set, else the largest label + 1 over all lists."""
    if task == "counting":
        return 1
    if num_classes:
        return num_classes
    if task == "multilabel":
        return max(t.shape[1] for t in targets)
    return int(max(int(t.max()) for t in targets)) + 1


def pad_targets(task: str, targets: Tensor, k: int) -> Tensor:
    """Multi-hot rows widened to K columns (a list whose largest id is below another list's)."""
    if task == "multilabel" and targets.shape[1] < k:
        return F.pad(targets, (0, k - targets.shape[1]))
    return targets


@torch.no_grad()
def init_head(task: str, model: nn.Module, train_targets_: Tensor) -> None:
    """Counting: the head's bias = the mean train count (module docstring); other tasks: nothing."""
    if task == "counting":
        model.head.bias.fill_(float(train_targets_.mean()))


def train_targets(task: str, targets: Tensor, index: Tensor, num_classes: int, smoothing: float) -> Tensor:
    """The training targets of the dataset entries `index` (B,): (B, K) float for the class tasks, (B,) counts."""
    rows = targets[index]
    if task == "classification":
        return smooth_one_hot(rows, num_classes, smoothing)  # (B, K)
    if task == "multilabel":
        return rows * (1.0 - smoothing) + smoothing / num_classes  # (B, K)
    return rows.float()  # (B,)


def task_loss(task: str, logits: Tensor, target: Tensor) -> Tensor:
    """logits (B, K) (counting: (B, 1)); target as `train_targets` returns it."""
    if task == "classification":
        return soft_cross_entropy(logits, target)
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(logits.float(), target)
    return F.l1_loss(logits.float()[:, 0], target)


def view_scores(task: str, logits: Tensor) -> Tensor:
    """(B, K) logits -> the per-view scores that multi-view testing averages (softmax / sigmoid / the count)."""
    if task == "classification":
        return logits.float().softmax(-1)
    if task == "multilabel":
        return logits.float().sigmoid()
    return logits.float()


def task_metrics(task: str, scores: Tensor, targets: Tensor, num_classes: int) -> dict[str, float]:
    """Metrics of averaged view scores (N, K) against the targets of the same N videos."""
    if task == "classification":
        return classification_metrics(scores, targets.to(scores.device), num_classes)
    if task == "multilabel":
        return mean_average_precision(scores.cpu(), targets.cpu())
    return counting_metrics(scores[:, 0].cpu(), targets.cpu())


def describe(task: str, m: dict[str, float]) -> str:
    """One log line of metrics."""
    if task == "classification":
        return f"top-1 {m['top1']:.2f}  top-5 {m['top5']:.2f}  mean-class {m['mean_class']:.2f}"
    if task == "multilabel":
        return f"mAP {m['map']:.2f} ({int(m['map_classes'])} classes)"
    return f"count MAE/count {m['count_mae']:.3f}  MAE {m['mae']:.2f}  off-by-one {m['obo']:.1f}"
