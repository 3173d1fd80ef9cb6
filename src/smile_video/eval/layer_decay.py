"""Layer-wise learning-rate decay (BEiT / MAE / VideoMAE finetuning): deeper layers learn faster.

Layer ids: the patch embedding (and position embedding) is layer 0, block i is layer i + 1, everything after the
blocks (fc_norm, head) is layer depth + 1. A parameter of layer l gets lr_scale = decay ** (depth + 1 - l), so the
head trains at the full rate and the patch embedding at decay ** (depth + 1).
"""

from __future__ import annotations

from torch import nn

from ..engine.optim import NO_DECAY_NAMES

__all__ = ["layer_id", "layer_decay_param_groups"]


def layer_id(name: str, depth: int) -> int:
    """The layer a parameter named `name` belongs to (see the module docstring)."""
    if name.startswith(("patch_embed", "pos_embed", "cls_token", "mask_token")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def layer_decay_param_groups(model: nn.Module, weight_decay: float, layer_decay: float, depth: int) -> list[dict]:
    """AdamW parameter groups, one per (layer, decay / no decay), each with its "lr_scale".

    No weight decay for 1-D parameters (norms, biases) and position / class tokens, as in MAE.
    The engine sets group["lr"] = lr * group["lr_scale"] each step (`smile_video.engine.optim.set_lr`).
    """
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or name.endswith(".bias") or any(n in name for n in NO_DECAY_NAMES)
        lid = layer_id(name, depth)
        key = (lid, no_decay)
        if key not in groups:
            groups[key] = {"params": [], "names": [], "weight_decay": 0.0 if no_decay else weight_decay,
                           "lr_scale": layer_decay ** (depth + 1 - lid), "layer": lid}
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]
