"""What defines the pasted motion of K objects in B clips, and how it is sampled from a `MotionConfig`."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ..config import MotionConfig
from .keyframes import sample_keyframe_indices, sample_keyframes
from .trajectory import sample_trajectories

__all__ = ["MotionParams", "sample_motion", "REFERENCE_SIZE"]

REFERENCE_SIZE = 224  # MotionConfig pixel quantities are at this frame size and scale with min(H, W)


@dataclass
class MotionParams:
    """The motion of K objects in each of B clips of T frames.

    Geometry: a frame spans ``[0, W] x [0, H]`` in pixels, y down. Object k of clip b in frame t is the atlas
    cell ``object_ids[b, k]`` stretched to ``sizes[b, k] * scales[b, k, t]`` pixels (width, height), rotated by
    ``angles[b, k, t]`` degrees counter-clockwise as seen on screen (like ``PIL.Image.rotate``), centred at
    ``centers[b, k, t]``. Later objects (larger k) are pasted over earlier ones.

    Attributes:
        object_ids: (B, K) long, rows of the bank atlas.
        centers: (B, K, T, 2) float pixels (x, y).
        angles: (B, K, T) float degrees.
        scales: (B, K, T) float.
        sizes: (B, K, 2) float base size (P, Q) = (width, height) in pixels before scaling.
    """

    object_ids: torch.Tensor
    centers: torch.Tensor
    angles: torch.Tensor
    scales: torch.Tensor
    sizes: torch.Tensor

    def __post_init__(self) -> None:
        b, k = self.object_ids.shape
        t = self.centers.shape[2] if self.centers.dim() == 4 else -1
        expected = {"centers": (b, k, t, 2), "angles": (b, k, t), "scales": (b, k, t), "sizes": (b, k, 2)}
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"MotionParams.{name}: expected shape {shape} (B, K, T from object_ids and "
                                 f"centers), got {got}")

    @property
    def batch(self) -> int:
        return self.object_ids.shape[0]

    @property
    def num_objects(self) -> int:
        return self.object_ids.shape[1]

    @property
    def num_frames(self) -> int:
        return self.centers.shape[2]

    def to(self, device: torch.device | str) -> MotionParams:
        return MotionParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def sample_motion(batch: int, num_frames: int, height: int, width: int, num_bank_objects: int, cfg: MotionConfig,
                  generator: torch.Generator, device: torch.device | str | None = None) -> MotionParams:
    """Draw the motion of ``cfg.num_objects`` objects in each of `batch` clips (paper section 3.3, 4.1).

    Per object: a bank object uniformly; a square base size P = Q ~ U[size_min, size_max] (at 224 px, scaled by
    min(H, W) / 224); a trajectory (``cfg.trajectory``); rotation ~ U[rotation_min, rotation_max] and scale ~
    U[scale_min, scale_max] at the first, a random middle and the last frame, linear in between. Sampling runs on
    the generator's device (same seed, same params on any device), then moves to `device`.
    """
    if num_bank_objects < 1:
        raise ValueError("sample_motion: the object bank is empty")
    k = cfg.num_objects
    n = batch * k
    g = generator
    px = min(height, width) / REFERENCE_SIZE
    object_ids = torch.randint(0, num_bank_objects, (batch, k), generator=g, device=g.device)
    side = cfg.size_min + (cfg.size_max - cfg.size_min) * torch.rand(n, generator=g, device=g.device)
    sizes = (side * px).view(batch, k, 1).expand(batch, k, 2).contiguous()  # (B, K, 2) square boxes
    centers = sample_trajectories(cfg.trajectory, n, num_frames, height, width, g, cfg.num_points, cfg.kappa,
                                  scale=px)  # (B K, T, 2)
    key_idx = sample_keyframe_indices(n, num_frames, g)  # (B K, 3): one middle keyframe per object
    angles = sample_keyframes(n, num_frames, cfg.rotation_min, cfg.rotation_max, g, key_idx)  # (B K, T)
    scales = sample_keyframes(n, num_frames, cfg.scale_min, cfg.scale_max, g, key_idx)  # (B K, T)
    params = MotionParams(object_ids=object_ids, centers=centers.view(batch, k, num_frames, 2),
                          angles=angles.view(batch, k, num_frames), scales=scales.view(batch, k, num_frames),
                          sizes=sizes)
    return params.to(device) if device is not None else params
