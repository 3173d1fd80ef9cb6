"""AdamW with the usual no-decay rule, the linear-scaling rule, and warmup + cosine computed per optimizer step."""

from __future__ import annotations

import math

import torch
from torch import nn

NO_DECAY_NAMES = ("mask_token", "pos_embed", "cls_token", "q_bias", "v_bias")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights, and the rest (norms, biases, mask token, 1-D parameters) with no weight decay."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(".bias") or any(n in name for n in NO_DECAY_NAMES):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """The linear scaling rule of MAE/VideoMAE: lr = base_lr * effective_batch / 256."""
    return base_lr * batch_size / 256


def build_adamw(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float]) -> torch.optim.AdamW:
    """AdamW over `param_groups`; on CUDA the fused implementation (a few kernels per step instead of one per
    parameter tensor and operation: the step is partly launch-bound), elsewhere torch's default."""
    params = list(model.parameters())
    fused = True if params and all(p.is_cuda for p in params) else None
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, fused=fused)


def cosine_lr(step: int, total_steps: int, warmup_steps: int, peak_lr: float, min_lr: float) -> float:
    """Linear warmup from 0 to `peak_lr` over `warmup_steps`, then cosine decay to `min_lr` at `total_steps`."""
    if step < warmup_steps:
        return peak_lr * step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, progress)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
