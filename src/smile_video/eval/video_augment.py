"""Clip augmentations for finetuning: RandAugment and random erasing, each the same on every frame of a clip.

Follows timm's `rand-m{M}-n{N}-mstd{S}-inc1` policy (the one MAE/VideoMAE use and Table 17's "RandAug (9, 0.5)"
names: magnitude 9 of 10, magnitude std 0.5, 2 operations): N operations drawn with replacement from 15, each applied
with probability 0.5, each with a magnitude drawn from N(M, S) clipped to [0, 10]. The ranges are timm's "increasing"
ones (facts, not code): rotate 30 deg, shear 0.3, translate 0.45 of the size, enhance factors 1 +- 0.9, posterize
4 -> 0 bits, solarize threshold 256 -> 0, solarize-add 110. Auto-contrast and equalize use statistics of the whole
clip, so every frame is changed the same way. Ops come from `torchvision.transforms.v2.functional`, which takes
(T, C, H, W) tensors.

Random erasing follows VideoMAE's finetuning (`--reprob 0.25 --remode pixel --recount 1`): VideoMAE's copy of timm's
`RandomErasing` in its `cube` form, applied per clip after normalisation: one rectangle, the same on every frame, filled
with standard-normal noise drawn per pixel (and per channel and frame).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor

__all__ = ["OPS", "rand_augment_clip", "rand_augment_batch", "erase_box", "random_erase_batch"]

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


def erase_box(height: int, width: int, generator: torch.Generator, prob: float = 0.25, min_area: float = 0.02,
              max_area: float = 1 / 3, min_aspect: float = 0.3, max_aspect: float | None = None,
              max_tries: int = 100) -> tuple[int, int, int, int] | None:
    """One random-erasing draw for a (height, width) frame: (top, left, h, w), or None when this clip is not erased.

    timm's `RandomErasing` (count 1) as VideoMAE's `cube` mode runs it: erase with probability `prob`; then up to
    `max_tries` times draw an area fraction uniform in [min_area, max_area] and an aspect ratio h / w log-uniform in
    [min_aspect, max_aspect (default 1 / min_aspect)], round h and w, and keep the first box with 1 <= h < height and
    1 <= w < width (timm accepts h or w = 0, an empty box, possible only below ~42 pixels a frame), at a uniform
    position. Every draw comes from `generator`.
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"random erasing probability must be in [0, 1], got {prob}")
    max_aspect = max_aspect or 1.0 / min_aspect
    if not 0.0 < min_area <= max_area or not 0.0 < min_aspect <= max_aspect:
        raise ValueError(f"random erasing needs 0 < min_area <= max_area and 0 < min_aspect <= max_aspect, got "
                         f"area ({min_area}, {max_area}), aspect ({min_aspect}, {max_aspect})")
    if _rand(generator) >= prob:  # timm: skip when random() > prob; the boundary case has probability 0
        return None
    log_lo, log_hi = math.log(min_aspect), math.log(max_aspect)
    for _ in range(max_tries):
        area = (min_area + (max_area - min_area) * _rand(generator)) * height * width
        aspect = math.exp(log_lo + (log_hi - log_lo) * _rand(generator))
        h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if 1 <= h < height and 1 <= w < width:
            top = int(torch.randint(height - h + 1, (), generator=generator))
            left = int(torch.randint(width - w + 1, (), generator=generator))
            return top, left, h, w
    return None


def random_erase_batch(video: Tensor, generator: torch.Generator, prob: float = 0.25, min_area: float = 0.02,
                       max_area: float = 1 / 3, min_aspect: float = 0.3, max_aspect: float | None = None) -> Tensor:
    """video (B, C, T, H, W) float, normalised -> a new (B, C, T, H, W) tensor; `video` is left unchanged.

    Each clip is erased with probability `prob`: one box from `erase_box`, the same on every frame, replaced by
    standard-normal noise (C, T, h, w) drawn on the CPU from `generator` (VideoMAE's "pixel" mode; the noise differs
    per frame, the box does not). prob = 0 returns `video` itself and draws nothing.
    """
    if video.dim() != 5 or not video.is_floating_point():
        raise ValueError(f"random_erase_batch takes a (B, C, T, H, W) float video, got {tuple(video.shape)} "
                         f"{video.dtype}")
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"random erasing probability must be in [0, 1], got {prob}")
    if prob == 0.0:
        return video
    b, c, t, height, width = video.shape
    out = video.clone()
    for i in range(b):
        box = erase_box(height, width, generator, prob, min_area, max_area, min_aspect, max_aspect)
        if box is None:
            continue
        top, left, h, w = box
        noise = torch.randn((c, t, h, w), generator=generator)  # (C, T, h, w): per pixel, channel and frame
        out[i, :, :, top:top + h, left:left + w] = noise.to(out.device, out.dtype)
    return out
