"""Smoothed random object trajectories (paper section 3.3) and the released code's variant.

Both return object centres ``(n, T, 2)`` in pixels ``(x, y)``, with the frame spanning ``[0, W] x [0, H]`` (pixel
``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``).

- ``paper``: M points uniform over the frame, a 1-D Gaussian filter (std ``kappa`` points) along x and along y,
  then T points taken evenly along the M-point path. Smoothing i.i.d. points shrinks their spread: the smoothed
  path has std ``sigma_uniform / sqrt(2 sqrt(pi) kappa)`` around the frame centre (docs/motion.md).
- ``official``: 48 points uniform in [0, 1), Gaussian filter with std 8, each axis min-max normalised to [0, 1] and
  scaled by one random span in [40, 180) px (at 224 px), then translated to a random place inside the frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["gaussian_kernel", "gaussian_smooth", "downsample_path", "paper_trajectory", "official_trajectory",
           "sample_trajectories", "OFFICIAL_POINTS", "OFFICIAL_SIGMA", "OFFICIAL_SPAN"]

OFFICIAL_POINTS = 48
OFFICIAL_SIGMA = 8.0
OFFICIAL_SPAN = (40.0, 180.0)  # px at 224 px, half-open


def gaussian_kernel(sigma: float, radius: int | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian h(z) = exp(-z^2 / 2 sigma^2) / sum, z in [-radius, radius]: (2 radius + 1,)."""
    if sigma <= 0:
        raise ValueError(f"Gaussian sigma must be > 0, got {sigma}")
    radius = int(math.ceil(4 * sigma)) if radius is None else radius
    z = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-z.square() / (2 * sigma**2))
    return (k / k.sum()).to(dtype)


def gaussian_smooth(points: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian filter along the path axis with mirror boundaries.

    points: (n, M, C) float -> (n, M, C). The kernel is truncated at min(4 sigma, M - 1) and renormalised.
    """
    n, m, c = points.shape
    radius = min(int(math.ceil(4 * sigma)), m - 1)
    if radius < 1:
        return points.clone()
    kernel = gaussian_kernel(sigma, radius, points.dtype).to(points.device)  # (2r + 1,)
    x = points.permute(0, 2, 1).reshape(n * c, 1, m)  # (n C, 1, M)
    x = F.pad(x, (radius, radius), mode="reflect")  # (n C, 1, M + 2r)
    y = F.conv1d(x, kernel.view(1, 1, -1))  # (n C, 1, M)
    return y.view(n, c, m).permute(0, 2, 1).contiguous()


def downsample_path(path: torch.Tensor, num_frames: int) -> torch.Tensor:
    """T points evenly spaced along an M-point path (nearest index of linspace(0, M - 1, T)).

    path: (n, M, 2) -> (n, T, 2).
    """
    m = path.shape[1]
    idx = torch.linspace(0, m - 1, num_frames, dtype=torch.float64).round().long().to(path.device)
    return path[:, idx]


def paper_trajectory(n: int, num_frames: int, height: int, width: int, num_points: int, kappa: float,
                     generator: torch.Generator) -> torch.Tensor:
    """The paper's trajectory: (n, T, 2) centres (x, y) in pixels.

    M = `num_points` points uniform over [0, W] x [0, H], Gaussian-filtered with std `kappa` (in points),
    downsampled to T.
    """
    if num_points < num_frames:
        raise ValueError(f"motion.num_points={num_points} must be >= the number of frames {num_frames} (M >> T)")
    device = generator.device
    pts = torch.rand(n, num_points, 2, generator=generator, device=device)  # (n, M, 2) in [0, 1)
    pts = pts * torch.tensor([width, height], dtype=pts.dtype, device=device)  # (n, M, 2) pixels
    return downsample_path(gaussian_smooth(pts, kappa), num_frames)  # (n, T, 2)


def official_trajectory(n: int, num_frames: int, height: int, width: int, generator: torch.Generator,
                        scale: float = 1.0) -> torch.Tensor:
    """The released code's trajectory: (n, T, 2) centres (x, y) in pixels.

    48 points in [0, 1), Gaussian std 8, each axis min-max normalised, times one span ~ U[40, 180) * `scale` px
    per path (both axes), translated by a uniform offset that keeps the path inside the frame.
    """
    device = generator.device
    pts = torch.rand(n, OFFICIAL_POINTS, 2, generator=generator, device=device)  # (n, 48, 2)
    pts = downsample_path(gaussian_smooth(pts, OFFICIAL_SIGMA), num_frames)  # (n, T, 2)
    lo, hi = pts.amin(1, keepdim=True), pts.amax(1, keepdim=True)  # (n, 1, 2)
    pts = (pts - lo) / (hi - lo).clamp_min(1e-6)  # (n, T, 2) in [0, 1]
    span = OFFICIAL_SPAN[0] + (OFFICIAL_SPAN[1] - OFFICIAL_SPAN[0]) * torch.rand(n, 1, 1, generator=generator,
                                                                                  device=device)
    span = span * scale  # (n, 1, 1) pixels
    frame = torch.tensor([width, height], dtype=pts.dtype, device=device)  # (2,)
    room = (frame - span).clamp_min(0)  # (n, 1, 2) free space for the offset
    offset = torch.rand(n, 1, 2, generator=generator, device=device) * room  # (n, 1, 2)
    return offset + pts * span  # (n, T, 2)


def sample_trajectories(kind: str, n: int, num_frames: int, height: int, width: int, generator: torch.Generator,
                        num_points: int = 128, kappa: float = 8.0, scale: float = 1.0) -> torch.Tensor:
    """Dispatch on `kind` ("paper" | "official"): (n, T, 2) centres (x, y) in pixels on the generator's device."""
    if kind == "paper":
        return paper_trajectory(n, num_frames, height, width, num_points, kappa, generator)
    if kind == "official":
        return official_trajectory(n, num_frames, height, width, generator, scale)
    raise ValueError(f"unknown trajectory kind {kind!r}; choose 'paper' or 'official'")
