"""Pixel targets: VideoMAE's per-tubelet normalised pixels (the baseline of paper Table 4h).

Each token's target is its whole ``tubelet x patch x patch`` cube of RGB pixels in [0, 1], standardised per channel
over the cube (mean and unbiased std, eps 1e-6) and flattened ``(dt, dy, dx, c)``: ``D = tubelet * patch^2 * 3``.
Per-cube standardisation makes any per-channel affine input normalisation (e.g. ImageNet's) irrelevant, so the raw
clip is used directly. Pair with ``teacher.target_norm=none`` to reproduce VideoMAE.
"""

from __future__ import annotations

from torch import Tensor

from smile_video.data.normalize import to_float
from smile_video.teachers.base import Teacher

__all__ = ["patchify_tubelets", "normalized_pixel_targets", "PixelTeacher"]


def patchify_tubelets(video: Tensor, tubelet: int, patch: int) -> Tensor:
    """``(B, C, T, H, W) -> (B, N, tubelet * patch * patch, C)``, tokens in ``(t', h', w')`` order."""
    B, C, T, H, W = video.shape
    t, h, w = T // tubelet, H // patch, W // patch
    x = video.reshape(B, C, t, tubelet, h, patch, w, patch)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (B, t', h', w', dt, dy, dx, C)
    return x.reshape(B, t * h * w, tubelet * patch * patch, C)


def normalized_pixel_targets(video: Tensor, tubelet: int, patch: int, eps: float = 1e-6) -> Tensor:
    """Raw clip ``(B, 3, T, H, W)`` -> ``(B, N, tubelet * patch^2 * 3)`` cube-normalised pixels."""
    cubes = patchify_tubelets(to_float(video), tubelet, patch)  # (B, N, P, C)
    mean = cubes.mean(dim=-2, keepdim=True)
    std = cubes.var(dim=-2, unbiased=True, keepdim=True).sqrt()
    cubes = (cubes - mean) / (std + eps)
    return cubes.flatten(2)  # (B, N, P * C)


class PixelTeacher(Teacher):
    """VideoMAE pixel targets behind the Teacher interface (no weights)."""

    def __init__(self, grid: tuple[int, int, int], tubelet: int, patch: int) -> None:
        super().__init__(tubelet * patch * patch * 3, grid, tubelet, dtype="float32")
        self.patch = int(patch)
        self.freeze()

    def _targets(self, video: Tensor) -> Tensor:
        _, h, w = self.grid
        if video.shape[-2:] != (h * self.patch, w * self.patch):
            raise ValueError(f"pixel teacher: frames are {tuple(video.shape[-2:])}, the student grid {h}x{w} "
                             f"with patch {self.patch} needs {(h * self.patch, w * self.patch)}")
        return normalized_pixel_targets(video, self.tubelet, self.patch)
