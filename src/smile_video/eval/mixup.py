"""Mixup and CutMix for video batches with label smoothing (the timm `Mixup` recipe, batch mode).

Per batch: with probability `prob` mix at all; then CutMix with probability `switch_prob` when both are enabled
(else whichever is enabled). The batch is mixed with its reverse (sample i with sample B-1-i). Mixup draws
lambda ~ Beta(mixup_alpha, mixup_alpha); CutMix draws lambda ~ Beta(cutmix_alpha, cutmix_alpha), pastes one box
(the same box in every frame) and corrects lambda to the box's true area. Targets are smoothed one-hot vectors
(off = smoothing / K, on = 1 - smoothing + off) mixed with the same lambda, so each row sums to 1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["smooth_one_hot", "mix_video_batch", "soft_cross_entropy"]


def smooth_one_hot(labels: Tensor, num_classes: int, smoothing: float = 0.0) -> Tensor:
    """labels (B,) -> (B, K) float, rows summing to 1."""
    off = smoothing / num_classes
    out = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return out.scatter_(1, labels.long().view(-1, 1), 1.0 - smoothing + off)


def _beta(alpha: float, generator: torch.Generator) -> float:
    a = torch.tensor(float(alpha))
    g1 = torch._standard_gamma(a.expand(1).clone(), generator=generator).item()
    g2 = torch._standard_gamma(a.expand(1).clone(), generator=generator).item()
    return g1 / (g1 + g2)


def _uniform(generator: torch.Generator) -> float:
    return torch.rand((), generator=generator).item()


def mix_video_batch(video: Tensor, labels: Tensor, num_classes: int, generator: torch.Generator,
                    mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, prob: float = 1.0,
                    switch_prob: float = 0.5, smoothing: float = 0.1,
                    targets: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """video (B, C, T, H, W) float, labels (B,) -> (mixed video (B, C, T, H, W), soft targets (B, K)).

    `targets`: (B, K) float targets to mix instead of the smoothed one-hots of `labels` (multi-hot rows for
    multi-label; `labels` and `smoothing` are then unused). `generator` is a CPU generator; B must be even (timm's
    rule) when mixing is enabled.
    """
    use_mixup, use_cutmix = mixup_alpha > 0, cutmix_alpha > 0
    lam = 1.0
    if (use_mixup or use_cutmix) and _uniform(generator) < prob:
        if video.shape[0] % 2:
            raise ValueError(f"mixup/cutmix need an even batch size, got {video.shape[0]}")
        cut = use_cutmix and (not use_mixup or _uniform(generator) < switch_prob)
        flipped = video.flip(0)
        if cut:
            lam = _beta(cutmix_alpha, generator)
            h, w = video.shape[-2:]
            ratio = math.sqrt(1.0 - lam)
            ch, cw = int(h * ratio), int(w * ratio)
            cy = int(torch.randint(h, (), generator=generator))
            cx = int(torch.randint(w, (), generator=generator))
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            video = video.clone()
            video[..., y0:y1, x0:x1] = flipped[..., y0:y1, x0:x1]  # the same box in every frame
            lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
        else:
            lam = _beta(mixup_alpha, generator)
            video = video * lam + flipped * (1.0 - lam)
    y = smooth_one_hot(labels, num_classes, smoothing) if targets is None else targets  # (B, K)
    return video, y * lam + y.flip(0) * (1.0 - lam)


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean over the batch of -sum_k targets * log_softmax(logits). logits, targets: (B, K)."""
    return torch.sum(-targets * torch.log_softmax(logits.float(), dim=-1), dim=-1).mean()
