"""`ObjectAlpha`: the per-frame coverage of every pasted object, stored as windows instead of full frames.

A (B, K, T, H, W) float alpha is mostly zeros (205 MB per 32 x 16 x 224 x 224 batch with K = 2); compositing only
ever computes it inside each object's window. `ObjectAlpha` keeps those windows (uint8, ``round(255 a)``, and at
least 1 wherever ``a > 0``, so a zero in the dense alpha means "pixel untouched by this object") with their
origins, and gives the dense tensor on demand (`dense`) or the per-token covered fraction that trajectory masking
needs (`token_coverage`) without materialising the float alpha.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["AlphaPiece", "ObjectAlpha"]


@dataclass
class AlphaPiece:
    """Windows of one object slot k for n (clip, frame) pairs, all of one size (h, w).

    Attributes:
        k: the object slot.
        b, t, y0, x0: (n,) long clip, frame and window origin (top-left pixel, window inside the frame).
        a: (n, h, w) uint8 coverage, 255 = opaque.
    """

    k: int
    b: torch.Tensor
    t: torch.Tensor
    y0: torch.Tensor
    x0: torch.Tensor
    a: torch.Tensor

    def to(self, device: torch.device | str) -> AlphaPiece:
        return AlphaPiece(self.k, *(x.to(device) for x in (self.b, self.t, self.y0, self.x0, self.a)))


@dataclass
class ObjectAlpha:
    """Per-frame coverage of K objects in B clips of T frames of H x W pixels, as windows (`AlphaPiece`).

    Within one slot k, the windows of distinct (clip, frame) pairs are distinct, so no two pieces of a slot overlap.
    ``alpha.dense()`` is the (B, K, T, H, W) float tensor of docs/design.md ("Object alpha").
    """

    shape: torch.Size
    device: torch.device
    pieces: list[AlphaPiece] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shape = torch.Size(self.shape)
        self.device = torch.device(self.device)
        if len(self.shape) != 5:
            raise ValueError(f"ObjectAlpha: shape must be (B, K, T, H, W), got {tuple(self.shape)}")

    @classmethod
    def zeros(cls, batch: int, num_objects: int, num_frames: int, height: int, width: int,
              device: torch.device | str = "cpu") -> ObjectAlpha:
        """No object anywhere."""
        return cls(torch.Size((batch, num_objects, num_frames, height, width)), torch.device(device))

    @classmethod
    def cat(cls, alphas: list[ObjectAlpha]) -> ObjectAlpha:
        """Concatenate along the batch (like ``torch.cat(dim=0)`` of the dense tensors)."""
        if not alphas:
            raise ValueError("ObjectAlpha.cat: nothing to concatenate")
        rest = alphas[0].shape[1:]
        pieces, offset = [], 0
        for al in alphas:
            if al.shape[1:] != rest:
                raise ValueError(f"ObjectAlpha.cat: shapes {tuple(alphas[0].shape)} and {tuple(al.shape)} differ "
                                 "beyond the batch")
            pieces += [AlphaPiece(p.k, p.b + offset, p.t, p.y0, p.x0, p.a) for p in al.to(alphas[0].device).pieces]
            offset += al.shape[0]
        return cls(torch.Size((offset, *rest)), alphas[0].device, pieces)

    def to(self, device: torch.device | str) -> ObjectAlpha:
        return ObjectAlpha(self.shape, torch.device(device), [p.to(device) for p in self.pieces])

    def dim(self) -> int:
        return 5

    def _scatter(self, out: torch.Tensor, piece: AlphaPiece, values: torch.Tensor) -> None:
        """out: (B, T, H, W) frames; values: (n, h, w) written into the piece's windows."""
        h, w = piece.a.shape[1:]
        out.unfold(2, h, 1).unfold(3, w, 1)[piece.b, piece.t, piece.y0, piece.x0] = values

    def dense(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(B, K, T, H, W) alpha: float `dtype` in [0, 1], or uint8 in [0, 255] when ``dtype=torch.uint8``."""
        B, K, T, H, W = self.shape
        out = torch.zeros(B, K, T, H, W, dtype=torch.uint8, device=self.device)
        for p in self.pieces:
            self._scatter(out[:, p.k], p, p.a)
        return out if dtype == torch.uint8 else out.to(dtype).div_(255)

    def union(self) -> torch.Tensor:
        """(B, T, H, W) uint8 coverage of all objects together (max over K)."""
        B, K, T, H, W = self.shape
        out = torch.zeros(B, T, H, W, dtype=torch.uint8, device=self.device)
        pieces = sorted(self.pieces, key=lambda p: p.k)  # one slot at a time: its windows never overlap
        for p in pieces:
            if p.k == pieces[0].k:  # the first slot lands on zeros: no max needed (fewer launches on a GPU)
                self._scatter(out, p, p.a)
                continue
            h, w = p.a.shape[1:]
            current = out.unfold(2, h, 1).unfold(3, w, 1)[p.b, p.t, p.y0, p.x0]  # (n, h, w) copy
            self._scatter(out, p, torch.maximum(current, p.a))
        return out

    def token_coverage(self, grid: tuple[int, int, int], tubelet: int, patch: int) -> torch.Tensor:
        """(B, T', H', W') float: the fraction of each patch the objects' union covers, in the best frame of each
        tubelet (what `smile_video.masking.object_tokens` thresholds)."""
        B, K, T, H, W = self.shape
        t, h, w = grid
        if (t * tubelet, h * patch, w * patch) != (T, H, W):
            raise ValueError(f"alpha has (T, H, W) = {(T, H, W)}, but grid {grid} with tubelet {tubelet} and patch "
                             f"{patch} needs {(t * tubelet, h * patch, w * patch)}")
        if K == 0 or not self.pieces:
            return torch.zeros(B, t, h, w, device=self.device)
        sums = self.patch_sums(patch).view(B, t, tubelet, h, w)  # (B, t, tubelet, h, w) int32
        return sums.amax(dim=2).float() / (255 * patch * patch)

    def patch_sums(self, patch: int, kernel: str = "auto") -> torch.Tensor:
        """(B, T, H / patch, W / patch) int32: the sum of the union's bytes (``union()``) over each patch of each
        frame. On the CPU the C kernel (`cpu_kernel.union_patch_sums`) does it frame by frame without building the
        full-size union (kernel="torch" forces the plain torch reduction)."""
        B, K, T, H, W = self.shape
        if H % patch or W % patch:
            raise ValueError(f"alpha frames {H}x{W} are not divisible into {patch}-pixel patches")
        if kernel not in ("auto", "torch"):
            raise ValueError(f"patch_sums: kernel must be auto or torch, got {kernel!r}")
        if kernel == "auto" and self.device.type == "cpu":
            from . import cpu_kernel

            if cpu_kernel.available():
                return cpu_kernel.union_patch_sums(tuple(self.shape), self.pieces, patch)
        union = self.union().view(B, T, H // patch, patch, W // patch, patch)
        return union.sum(dim=(3, 5), dtype=torch.int32)
