"""Target normalisation: applied to teacher targets ``(B, N, D)`` before the loss.

- ``official``: the released SMILE code's behaviour as issue 5 describes it: per sample and channel, standardised
  over all N tokens (mean and std over dim 1, eps 1e-6 added to the std; the unbiased std is our choice, the
  released code was not available to check it).
- ``layernorm``: per token over the D channels, no affine (``F.layer_norm``, eps 1e-6).
- ``none``: unchanged.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["TARGET_NORMS", "normalize_targets"]

TARGET_NORMS = ("official", "layernorm", "none")


def normalize_targets(targets: Tensor, mode: str, eps: float = 1e-6) -> Tensor:
    """``(B, N, D) -> (B, N, D)`` normalised as ``mode`` says (see the module docstring)."""
    if targets.dim() != 3:
        raise ValueError(f"normalize_targets: expected (B, N, D), got shape {tuple(targets.shape)}")
    if mode == "official":
        mean = targets.mean(dim=1, keepdim=True)  # (B, 1, D)
        std = targets.var(dim=1, unbiased=True, keepdim=True).sqrt()  # (B, 1, D)
        return (targets - mean) / (std + eps)
    if mode == "layernorm":
        return F.layer_norm(targets, targets.shape[-1:], eps=eps)
    if mode == "none":
        return targets
    raise ValueError(f"teacher.target_norm: {mode!r} is not one of {list(TARGET_NORMS)}")
