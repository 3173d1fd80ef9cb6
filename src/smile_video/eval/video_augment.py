"""RandAugment for video clips: the same operations, with the same magnitudes, on every frame of a clip.

Follows timm's `rand-m{M}-n{N}-mstd{S}-inc1` policy (the one MAE/VideoMAE use and Table 17's "RandAug (9, 0.5)"
names: magnitude 9 of 10, magnitude std 0.5, 2 operations): N operations drawn with replacement from 15, each applied
with probability 0.5, each with a magnitude drawn from N(M, S) clipped to [0, 10]. The ranges are timm's "increasing"
ones (facts, not code): rotate 30 deg, shear 0.3, translate 0.45 of the size, enhance factors 1 +- 0.9, posterize
4 -> 0 bits, solarize threshold 256 -> 0, solarize-add 110. Auto-contrast and equalize use statistics of the whole
clip, so every frame is changed the same way. Ops come from `torchvision.transforms.v2.functional`, which takes
(T, C, H, W) tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor

__all__ = ["OPS", "rand_augment_clip", "rand_augment_batch"]

FILL = [128, 128, 128]


def _rand(generator: torch.Generator) -> float:
    return torch.rand((), generator=generator).item()


def _signed(value: float, generator: torch.Generator) -> float:
    return -value if _rand(generator) < 0.5 else value


def _clipwide(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Apply a statistics-based op to the clip as one tall image: (T, C, H, W) -> (C, T*H, W) -> back."""
    t, c, h, w = x.shape
    tall = x.permute(1, 0, 2, 3).reshape(c, t * h, w)
    return fn(tall).reshape(c, t, h, w).permute(1, 0, 2, 3)


def _solarize_add(x: Tensor, add: int) -> Tensor:
    bumped = (x.int() + add).clamp_(0, 255).to(torch.uint8)
    return torch.where(x < 128, bumped, x)


def _enhance(fn: Callable[[Tensor, float], Tensor]) -> Callable[[Tensor, float, torch.Generator], Tensor]:
    return lambda x, level, g: fn(x, 1.0 + _signed(0.9 * level, g))


# name -> op(x (T, C, H, W) uint8, level in [0, 1], generator) -> (T, C, H, W) uint8
OPS: dict[str, Callable[[Tensor, float, torch.Generator], Tensor]] = {
    "AutoContrast": lambda x, level, g: _clipwide(TF.autocontrast, x),
    "Equalize": lambda x, level, g: _clipwide(TF.equalize, x),
    "Invert": lambda x, level, g: TF.invert(x),
    "Rotate": lambda x, level, g: TF.rotate(x, _signed(30.0 * level, g), fill=FILL),
    "PosterizeIncreasing": lambda x, level, g: TF.posterize(x, max(0, 4 - int(level * 4))),
    "SolarizeIncreasing": lambda x, level, g: TF.solarize(x, float(max(0, 256 - int(level * 256)))),
    "SolarizeAdd": lambda x, level, g: _solarize_add(x, int(level * 110)),
    "ColorIncreasing": _enhance(TF.adjust_saturation),
    "ContrastIncreasing": _enhance(TF.adjust_contrast),
    "BrightnessIncreasing": _enhance(TF.adjust_brightness),
    "SharpnessIncreasing": _enhance(TF.adjust_sharpness),
    "ShearX": lambda x, level, g: TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0, fill=FILL,
                                            shear=[math.degrees(math.atan(_signed(0.3 * level, g))), 0.0]),
    "ShearY": lambda x, level, g: TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0, fill=FILL,
                                            shear=[0.0, math.degrees(math.atan(_signed(0.3 * level, g)))]),
    "TranslateXRel": lambda x, level, g: TF.affine(x, angle=0.0, scale=1.0, shear=[0.0, 0.0], fill=FILL,
                                                   translate=[int(_signed(0.45 * level, g) * x.shape[-1]), 0]),
    "TranslateYRel": lambda x, level, g: TF.affine(x, angle=0.0, scale=1.0, shear=[0.0, 0.0], fill=FILL,
                                                   translate=[0, int(_signed(0.45 * level, g) * x.shape[-2])]),
}
_NAMES = list(OPS)


def rand_augment_clip(clip: Tensor, generator: torch.Generator, num_ops: int = 2, magnitude: float = 9.0,
                      magnitude_std: float = 0.5, op_prob: float = 0.5) -> Tensor:
    """clip (3, T, H, W) uint8 -> (3, T, H, W) uint8, every frame transformed identically."""
    if clip.dtype != torch.uint8 or clip.dim() != 4 or clip.shape[0] != 3:
        raise ValueError(f"rand_augment_clip takes a (3, T, H, W) uint8 clip, got {tuple(clip.shape)} {clip.dtype}")
    x = clip.permute(1, 0, 2, 3)  # (T, 3, H, W)
    for _ in range(num_ops):
        name = _NAMES[int(torch.randint(len(_NAMES), (), generator=generator))]
        if _rand(generator) >= op_prob:
            continue
        m = magnitude + magnitude_std * torch.randn((), generator=generator).item() if magnitude_std > 0 else magnitude
        x = OPS[name](x, min(10.0, max(0.0, m)) / 10.0, generator)
    return x.permute(1, 0, 2, 3).contiguous()  # (3, T, H, W)


def rand_augment_batch(video: Tensor, generator: torch.Generator, num_ops: int = 2, magnitude: float = 9.0,
                       magnitude_std: float = 0.5) -> Tensor:
    """video (B, 3, T, H, W) uint8 -> the same shape, each clip with its own draw."""
    if num_ops <= 0:
        return video
    return torch.stack([rand_augment_clip(v, generator, num_ops, magnitude, magnitude_std) for v in video])
