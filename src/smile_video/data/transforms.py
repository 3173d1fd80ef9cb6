"""Spatial transforms on raw clips ``(3, T, H, W)`` uint8; the same crop for every frame; randomness from a generator.

Train: GroupMultiScaleCrop (TSN, as VideoMAE pretraining uses it): the crop's height and width are each one of
``scales x min(H, W)`` (sizes within 3 px of the target snap to it), with the two scale indices at most `max_distort`
apart, placed at one of 13 fixed positions (corners, centre, edge centres, quarter points); then a bilinear resize to
``size x size`` and an optional horizontal flip with probability 1/2.
Test: short-side resize to `size`, then `num_crops` crops along the long side (1: centre; 3: both ends and centre).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["resize", "multiscale_crop_params", "crop", "train_transform", "short_side_resize", "center_crop",
           "spatial_views"]


def _check(video: torch.Tensor) -> None:
    if video.dim() != 4 or video.shape[0] != 3:
        raise ValueError(f"expected a clip (3, T, H, W), got shape {tuple(video.shape)}")


def resize(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize: ``(3, T, H, W)`` -> ``(3, T, height, width)``, same dtype."""
    _check(video)
    if video.shape[-2:] == (height, width):
        return video
    if video.dtype == torch.uint8 and video.device.type == "cpu":
        # torch's uint8 kernel on channels-last frames (the decoders' own layout): ~5x faster than the float path
        # below for a 16-frame 224-px clip on one core, equal to it up to one grey level of rounding.
        x = video.permute(1, 0, 2, 3).contiguous(memory_format=torch.channels_last)  # (T, 3, H, W)
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        return x.permute(1, 0, 2, 3).contiguous()  # (3, T, height, width)
    x = video.permute(1, 0, 2, 3).float()  # (T, 3, H, W)
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    if video.dtype == torch.uint8:
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    else:
        x = x.to(video.dtype)
    return x.permute(1, 0, 2, 3).contiguous()  # (3, T, height, width)


def multiscale_crop_params(height: int, width: int, size: int, scales: Sequence[float], generator: torch.Generator,
                           max_distort: int = 1) -> tuple[int, int, int, int]:
    """GroupMultiScaleCrop's random crop box ``(top, left, crop_h, crop_w)`` for a ``height x width`` frame."""
    base = min(height, width)
    sizes = [int(base * s) for s in scales]
    sizes = [size if abs(s - size) < 3 else s for s in sizes]
    pairs = [(sizes[i], sizes[j]) for i in range(len(sizes)) for j in range(len(sizes)) if abs(i - j) <= max_distort]
    ch, cw = pairs[int(torch.randint(len(pairs), (1,), generator=generator))]
    ch, cw = min(max(ch, 1), height), min(max(cw, 1), width)
    hs, ws = (height - ch) // 4, (width - cw) // 4
    offsets = [  # (row step, column step) in quarters of the free space
        (0, 0), (0, 4), (4, 0), (4, 4), (2, 2),  # corners, centre
        (2, 0), (2, 4), (4, 2), (0, 2),  # edge centres
        (1, 1), (1, 3), (3, 1), (3, 3),  # quarter points
    ]
    r, c = offsets[int(torch.randint(len(offsets), (1,), generator=generator))]
    return r * hs, c * ws, ch, cw


def crop(video: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """``(3, T, H, W)`` -> ``(3, T, height, width)`` (a view)."""
    _check(video)
    return video[:, :, top:top + height, left:left + width]


def train_transform(video: torch.Tensor, size: int, scales: Sequence[float], flip: bool,
                    generator: torch.Generator) -> torch.Tensor:
    """Multi-scale crop, resize to ``size x size``, optional flip: ``(3, T, H, W)`` -> ``(3, T, size, size)``."""
    _check(video)
    top, left, ch, cw = multiscale_crop_params(video.shape[2], video.shape[3], size, scales, generator)
    out = resize(crop(video, top, left, ch, cw), size, size)  # (3, T, size, size)
    if flip and bool(torch.rand((), generator=generator) < 0.5):
        out = out.flip(-1)
    return out


def short_side_resize(video: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that ``min(H, W) == size``, keeping the aspect ratio."""
    _check(video)
    h, w = video.shape[2:]
    if h <= w:
        return resize(video, size, max(size, round(w * size / h)))
    return resize(video, max(size, round(h * size / w)), size)


def center_crop(video: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size x size`` window (the frame must be at least that large)."""
    return spatial_views(video, size, 1, resize_short_side=False)[0]


def spatial_views(video: torch.Tensor, size: int, num_crops: int = 1, resize_short_side: bool = True) -> torch.Tensor:
    """Test-time views: short-side resize, then `num_crops` square crops spread along the long side.

    ``(3, T, H, W)`` -> ``(num_crops, 3, T, size, size)``.
    """
    _check(video)
    if num_crops < 1:
        raise ValueError(f"num_crops must be >= 1, got {num_crops}")
    if resize_short_side:
        video = short_side_resize(video, size)
    h, w = video.shape[2:]
    if min(h, w) < size:
        raise ValueError(f"frame {h}x{w} is smaller than the crop {size}x{size}")
    long_free, along_w = (w - size, True) if w >= h else (h - size, False)
    short_off = ((h if along_w else w) - size) // 2
    if num_crops == 1:
        positions = [long_free // 2]
    else:
        positions = [round(k * long_free / (num_crops - 1)) for k in range(num_crops)]
    views = [crop(video, short_off, p, size, size) if along_w else crop(video, p, short_off, size, size)
             for p in positions]
    return torch.stack(views)  # (num_crops, 3, T, size, size)
