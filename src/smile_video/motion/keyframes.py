"""Keyframed object transforms (paper section 3.3): values drawn at the first, a random middle and the last frame,
linearly interpolated in between."""

from __future__ import annotations

import torch

__all__ = ["sample_keyframe_indices", "sample_keyframes", "interpolate_keyframes"]


def sample_keyframe_indices(n: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3) long frame indices ``[0, m, T - 1]`` with m uniform in [1, T - 2] (m = 0 when T < 3)."""
    device = generator.device
    if num_frames < 3:
        mid = torch.zeros(n, dtype=torch.long, device=device)
    else:
        mid = torch.randint(1, num_frames - 1, (n,), generator=generator, device=device)
    first = torch.zeros_like(mid)
    last = torch.full_like(mid, num_frames - 1)
    return torch.stack([first, mid, last], dim=1)  # (n, 3)


def interpolate_keyframes(indices: torch.Tensor, values: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Piecewise-linear interpolation through keyframes.

    indices: (n, k) long, strictly increasing along k except that repeated indices are allowed (the later value
        wins from that frame on); values: (n, k) float -> (n, T) float, equal to ``values`` at the keyframes and
        constant before the first / after the last keyframe.
    """
    n, k = indices.shape
    if k == 1:
        return values[:, :1].expand(n, num_frames).clone()
    t = torch.arange(num_frames, device=values.device, dtype=values.dtype)  # (T,)
    idx = indices.to(values.device)
    # segment s spans [idx[s], idx[s + 1]]: for each frame, the last keyframe at or before it
    seg = (t.view(1, 1, -1) >= idx.to(values.dtype).unsqueeze(-1)).sum(1) - 1  # (n, T)
    seg = seg.clamp(0, k - 2)
    i0 = idx.gather(1, seg).to(values.dtype)  # (n, T)
    i1 = idx.gather(1, seg + 1).to(values.dtype)
    v0, v1 = values.gather(1, seg), values.gather(1, seg + 1)  # (n, T)
    w = ((t.view(1, -1) - i0) / (i1 - i0).clamp_min(1e-12)).clamp(0, 1)  # (n, T)
    w = torch.where(i1 > i0, w, torch.ones_like(w))
    return v0 + (v1 - v0) * w


def sample_keyframes(n: int, num_frames: int, low: float, high: float, generator: torch.Generator,
                     indices: torch.Tensor | None = None) -> torch.Tensor:
    """Values uniform in [low, high] at the keyframes, linearly interpolated: (n, T) float.

    `indices` (n, 3) are reused when given (so rotation and scale share the middle keyframe, as in the paper).
    """
    if indices is None:
        indices = sample_keyframe_indices(n, num_frames, generator)
    u = torch.rand(n, indices.shape[1], generator=generator, device=generator.device)  # (n, 3)
    return interpolate_keyframes(indices, low + (high - low) * u, num_frames)
