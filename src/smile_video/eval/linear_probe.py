"""Linear probing on cached features (paper Table 16), several learning rates trained together.

One pass over the cached features trains L independent linear heads, one per learning rate. Every head starts
from the same initial weights, sees the same batches in the same order and has its own AdamW parameter group, so
head `i` trained together with the others is the same as head `i` trained alone (AdamW is element-wise; the losses
of different heads share no parameters). The optional BatchNorm without affine parameters before the heads (MAE's
linear-probe trick) has no parameters either, so it is shared.

Learning rates follow the MAE / VideoMAE convention: `ProbeConfig.lrs` are *base* rates and the optimiser uses
`base_lr * batch_size / 256` (Table 16: base 1e-3, batch 128, so 5e-4). Weight decay applies to the weights, not
the biases. The schedule is a per-step cosine decay to zero, without warmup (Table 16 lists none).

Table 16 also lists "layer-wise lr decay 0.75"; with a frozen encoder and a single linear layer it has nothing to act
on, so it is not used here.

Protocol. With test features, every head is scored on val and test after every epoch; the (lr, epoch) with the best
val top-1 is selected (`select_on_val`) and the test metrics at that point are the result: chosen on val, reported on
test. Without them, the result is the best lr by val top-1 after the last epoch, scored on the same val clips
("best of val"), which flatters the probe a little when several lrs are tried.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import ProbeConfig

__all__ = ["ProbeResult", "classification_metrics", "confusion_matrix", "train_linear_probe", "cosine_factor",
           "select_on_val", "PROTOCOL_VAL", "PROTOCOL_TEST"]

PROTOCOL_VAL = "best of val (no test list)"
PROTOCOL_TEST = ("chosen on val, reported on test: the (lr, epoch) with the best val top-1 (ties: mean-class, then "
                 "the earlier epoch, then the smaller lr), its test metrics")


@dataclass
class ProbeResult:
    """Per learning rate metrics after the last epoch, the selected point, and the reported result.

    Without a test set `best` is the val metrics of the lr with the best val top-1 (`PROTOCOL_VAL`). With one,
    `selected` is {"lr", "epoch", "val", "test"} at the (lr, epoch) chosen on val and `best` is its test metrics
    (`PROTOCOL_TEST`): `best` is always the number to report.
    """

    lrs: list[float]  # base learning rates, in the order of `metrics`
    metrics: list[dict[str, float]]  # one {"top1", "top5", "mean_class"} per lr on val, last epoch, in percent
    best_index: int  # the lr of the reported result
    history: list[dict[str, Any]] = field(default_factory=list)  # per-epoch train loss / val (and test) top-1
    weights: Tensor | None = None  # (L, D, K) final head weights
    biases: Tensor | None = None  # (L, K)
    test_metrics: list[dict[str, float]] | None = None  # per lr on test, last epoch (with a test set)
    selected: dict[str, Any] | None = None  # {"lr", "epoch", "val", "test"} chosen on val (with a test set)

    @property
    def protocol(self) -> str:
        return PROTOCOL_VAL if self.selected is None else PROTOCOL_TEST

    @property
    def best_lr(self) -> float:
        return self.lrs[self.best_index]

    @property
    def best(self) -> dict[str, float]:
        return self.metrics[self.best_index] if self.selected is None else self.selected["test"]

    def to_dict(self) -> dict[str, Any]:
        per_lr = [{"lr": lr, **m} for lr, m in zip(self.lrs, self.metrics)]
        if self.test_metrics is None:
            return {"protocol": self.protocol, "best_lr": self.best_lr, "best": self.best, "per_lr": per_lr}
        for row, m in zip(per_lr, self.test_metrics):
            row["test"] = m
        return {"protocol": self.protocol, "best_lr": self.best_lr, "best": self.best, "selected": self.selected,
                "per_lr": per_lr}


def classification_metrics(scores: Tensor, labels: Tensor, num_classes: int | None = None) -> dict[str, float]:
    """Top-1, top-5 and mean per-class accuracy (percent).

    scores: (N, K) logits or probabilities; labels: (N,) int64. Classes absent from `labels` do not count in the
    per-class mean. Top-5 is top-min(5, K).
    """
    if scores.dim() != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f"scores must be (N, K) and labels (N,), got {tuple(scores.shape)} and {tuple(labels.shape)}")
    k = scores.shape[1] if num_classes is None else num_classes
    labels = labels.to(scores.device)
    top = scores.topk(min(5, scores.shape[1]), dim=1).indices  # (N, 5)
    correct1 = top[:, 0] == labels  # (N,)
    correct5 = (top == labels[:, None]).any(dim=1)  # (N,)
    per_class_total = torch.bincount(labels, minlength=k).double()  # (K,)
    per_class_hit = torch.bincount(labels[correct1], minlength=k).double()  # (K,)
    present = per_class_total > 0
    mean_class = (per_class_hit[present] / per_class_total[present]).mean().item() if present.any() else 0.0
    return {
        "top1": 100.0 * correct1.double().mean().item(),
        "top5": 100.0 * correct5.double().mean().item(),
        "mean_class": 100.0 * mean_class,
    }


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """(K, K) int64 counts: row = true class, column = predicted class. predictions, labels: (N,) int64 in [0, K)."""
    if predictions.shape != labels.shape or predictions.dim() != 1:
        raise ValueError(f"predictions and labels must both be (N,), got {tuple(predictions.shape)} and "
                         f"{tuple(labels.shape)}")
    flat = labels.long().cpu() * num_classes + predictions.long().cpu()  # (N,)
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def select_on_val(val_history: Sequence[Sequence[dict[str, float]]], lrs: Sequence[float]) -> tuple[int, int]:
    """The (epoch index, lr index) with the best val top-1; ties: mean-class, then the earlier epoch, then the
    smaller lr. `val_history[e][i]`: the val metrics of lr `i` after epoch `e + 1`. Uses nothing but val."""
    points = [(e, i) for e in range(len(val_history)) for i in range(len(lrs))]
    if not points:
        raise ValueError("select_on_val: no evaluation to choose from")
    return max(points, key=lambda p: (val_history[p[0]][p[1]]["top1"], val_history[p[0]][p[1]]["mean_class"],
                                      -p[0], -lrs[p[1]]))


def cosine_factor(step: int, total: int, warmup: int = 0) -> float:
    """Linear warmup over `warmup` steps, then cosine decay from 1 to 0 over the remaining steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _pick_views(feats: Tensor, generator: torch.Generator) -> Tensor:
    """(B, V, D) -> (B, D): one random view per sample (e.g. original or flipped); (B, D) is returned as is."""
    if feats.dim() == 2:
        return feats
    choice = torch.randint(feats.shape[1], (feats.shape[0],), generator=generator).to(feats.device)  # (B,)
    return feats[torch.arange(feats.shape[0], device=feats.device), choice]


def _heads_forward(x: Tensor, weights: list[Tensor], biases: list[Tensor]) -> Tensor:
    """x: (B, D) -> logits (L, B, K)."""
    w = torch.stack(weights)  # (L, D, K)
    b = torch.stack(biases)  # (L, K)
    return torch.einsum("bd,ldk->lbk", x, w) + b[:, None, :]


def train_linear_probe(
    train_feats: Tensor,
    train_labels: Tensor,
    val_feats: Tensor,
    val_labels: Tensor,
    cfg: ProbeConfig,
    generator: torch.Generator,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    log: Callable[[dict[str, Any]], None] | None = None,
    test_feats: Tensor | None = None,
    test_labels: Tensor | None = None,
) -> ProbeResult:
    """Train one linear head per `cfg.lrs` together on cached features and evaluate each on the validation set.

    train_feats: (N, D) or (N, V, D) (V views, e.g. original and flipped: one is drawn per sample and epoch);
    train_labels: (N,) int64; val_feats: (M, D) or (M, V, D) (views averaged); val_labels: (M,); optional
    test_feats: (Q, D) or (Q, V, D) and test_labels: (Q,), which switch the protocol to "chosen on val, reported on
    test" (module docstring); the training itself does not depend on them.
    Uses cfg.epochs, cfg.batch_size, cfg.lrs, cfg.weight_decay, cfg.betas, cfg.batchnorm. `generator` (CPU) draws
    the head initialisation, the batch order and the views. `log` receives one record per epoch.
    """
    _check_shapes(train_feats, train_labels, val_feats, val_labels, "val")
    if (test_feats is None) != (test_labels is None):
        raise ValueError("train_linear_probe: give both test_feats and test_labels, or neither")
    if test_feats is not None:
        _check_shapes(train_feats, train_labels, test_feats, test_labels, "test")
    device = torch.device(device)
    label_sets = [train_labels, val_labels] + ([test_labels] if test_labels is not None else [])
    k = int(num_classes if num_classes is not None else max(int(y.max()) for y in label_sets) + 1)
    n, d = train_feats.shape[0], train_feats.shape[-1]
    train_feats = train_feats.float().to(device)
    train_labels = train_labels.long().to(device)
    val_x = _mean_views(val_feats.float().to(device))  # (M, D)
    test_x = None if test_feats is None else _mean_views(test_feats.float().to(device))  # (Q, D)
    val_hist: list[list[dict[str, float]]] = []  # [epoch][lr] val metrics (with a test set)
    test_hist: list[list[dict[str, float]]] = []  # [epoch][lr] test metrics

    # Same initialisation for every head (MAE: trunc_normal std 0.01 weights, zero bias).
    init = torch.randn(d, k, generator=generator).clamp_(-2, 2).mul_(0.01)  # (D, K)
    weights = [init.clone().to(device).requires_grad_(True) for _ in cfg.lrs]
    biases = [torch.zeros(k, device=device, requires_grad=True) for _ in cfg.lrs]
    scale = cfg.batch_size / 256
    groups = []
    for w, b, lr in zip(weights, biases, cfg.lrs):
        groups.append({"params": [w], "lr": lr * scale, "base": lr * scale, "weight_decay": cfg.weight_decay})
        groups.append({"params": [b], "lr": lr * scale, "base": lr * scale, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, betas=tuple(cfg.betas))

    # BatchNorm1d(affine=False): batch statistics in training, running statistics (momentum 0.1) at evaluation.
    run_mean = torch.zeros(d, device=device)
    run_var = torch.ones(d, device=device)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    history: list[dict[str, Any]] = []
    step = 0
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=generator).to(device)  # (N,)
        loss_sum = torch.zeros(len(cfg.lrs), device=device)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x = _pick_views(train_feats[idx], generator)  # (B, D)
            if cfg.batchnorm:
                x = F.batch_norm(x, run_mean, run_var, training=x.shape[0] > 1, momentum=0.1, eps=1e-6)
            logits = _heads_forward(x, weights, biases)  # (L, B, K)
            y = train_labels[idx]
            losses = torch.stack([F.cross_entropy(lg, y) for lg in logits])  # (L,)
            factor = cosine_factor(step, total)
            for g in opt.param_groups:
                g["lr"] = g["base"] * factor
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()  # heads share no parameters: each gets its own loss's gradient
            opt.step()
            loss_sum += losses.detach()
            step += 1
        if not torch.isfinite(loss_sum).all():
            bad = [lr for lr, v in zip(cfg.lrs, loss_sum.tolist()) if not math.isfinite(v)]
            raise FloatingPointError(f"linear probe: non-finite loss at epoch {epoch} for base lr(s) {bad}")
        scores = _evaluate(val_x, weights, biases, run_mean, run_var, cfg.batchnorm)  # (L, M, K)
        top1 = [100.0 * (s.argmax(1) == val_labels.to(device)).double().mean().item() for s in scores]
        record = {"epoch": epoch + 1, "train_loss": (loss_sum / steps_per_epoch).tolist(), "val_top1": top1}
        if test_x is not None:
            val_hist.append([classification_metrics(s, val_labels, k) for s in scores])
            test_scores = _evaluate(test_x, weights, biases, run_mean, run_var, cfg.batchnorm)  # (L, Q, K)
            test_hist.append([classification_metrics(s, test_labels, k) for s in test_scores])
            record["test_top1"] = [m["top1"] for m in test_hist[-1]]
        history.append(record)
        if log is not None:
            log(record)

    heads = {"weights": torch.stack(weights).detach().cpu(), "biases": torch.stack(biases).detach().cpu()}
    if test_x is not None:
        e, i = select_on_val(val_hist, cfg.lrs)
        selected = {"lr": cfg.lrs[i], "epoch": e + 1, "val": val_hist[e][i], "test": test_hist[e][i]}
        return ProbeResult(lrs=list(cfg.lrs), metrics=val_hist[-1], best_index=i, history=history,
                           test_metrics=test_hist[-1], selected=selected, **heads)
    scores = _evaluate(val_x, weights, biases, run_mean, run_var, cfg.batchnorm)
    metrics = [classification_metrics(s, val_labels, k) for s in scores]
    best = max(range(len(metrics)), key=lambda i: (metrics[i]["top1"], metrics[i]["mean_class"]))
    return ProbeResult(lrs=list(cfg.lrs), metrics=metrics, best_index=best, history=history, **heads)


def _check_shapes(train_feats: Tensor, train_labels: Tensor, feats: Tensor, labels: Tensor, split: str) -> None:
    """train_feats (N, D) or (N, V, D) with N = len(train_labels); feats (M, [V,] D) matching labels (M,) and D."""
    if train_feats.dim() not in (2, 3) or train_feats.shape[0] != train_labels.shape[0]:
        raise ValueError(f"train_feats must be (N, D) or (N, V, D) with N = len(train_labels); got "
                         f"{tuple(train_feats.shape)} and {tuple(train_labels.shape)}")
    if feats.shape[0] != labels.shape[0] or feats.shape[-1] != train_feats.shape[-1]:
        raise ValueError(f"{split}_feats {tuple(feats.shape)} does not match {split}_labels {tuple(labels.shape)} "
                         f"or the train feature dim {train_feats.shape[-1]}")


def _mean_views(x: Tensor) -> Tensor:
    """(M, V, D) -> (M, D), views averaged; (M, D) as is."""
    return x.mean(dim=1) if x.dim() == 3 else x


@torch.no_grad()
def _evaluate(x: Tensor, weights: list[Tensor], biases: list[Tensor], run_mean: Tensor, run_var: Tensor,
              batchnorm: bool) -> Tensor:
    """x: (M, D) -> logits (L, M, K), in chunks."""
    out = []
    for chunk in x.split(4096):
        if batchnorm:
            chunk = F.batch_norm(chunk, run_mean, run_var, training=False, eps=1e-6)
        out.append(_heads_forward(chunk, weights, biases))
    return torch.cat(out, dim=1)
