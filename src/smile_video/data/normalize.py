"""Pixel conventions shared by every module.

A *raw clip* is ``(B, 3, T, H, W)`` (or ``(3, T, H, W)``), either uint8 in [0, 255] or float in [0, 1].
Motion infusion and teachers take raw clips; the student takes ImageNet-normalised float clips.
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_float(video: torch.Tensor) -> torch.Tensor:
    """Raw clip -> float32 in [0, 1] (uint8 is divided by 255; float is returned as float32)."""
    if video.dtype == torch.uint8:
        return video.float().div_(255.0)
    return video.float()


def normalize(video: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN,
              std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """Raw clip ``(B, 3, T, H, W)`` or ``(3, T, H, W)`` -> float32 standardised per channel."""
    x = to_float(video)
    shape = (3, 1, 1, 1) if x.dim() == 4 else (1, 3, 1, 1, 1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return (x - m) / s
