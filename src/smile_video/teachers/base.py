"""The teacher interface: a frozen image encoder run on the first frame of every tubelet (paper 3.2).

A teacher maps a raw clip ``(B, 3, T, H, W)`` (uint8 or float in [0, 1]) to targets ``(B, N, D)`` float32 in the
student's token order: ``N = T' * h' * w'`` flattened ``(t', h', w')`` row-major, token ``(t', i, j)`` holding the
teacher's feature at grid cell ``(i, j)`` of frame ``t' * tubelet``. With ``teacher.frames=all``
(`ImageTeacher.use_every_frame`, not the paper's) an image teacher runs on every frame instead and token
``(t', i, j)`` holds its features of frames ``t' * tubelet ... t' * tubelet + tubelet - 1`` concatenated,
``D = tubelet * D_teacher``: as VideoMAE's pixel target covers the whole tubelet, the target then also says how the
content moves inside it.

Grid matching (one rule for every image teacher): each selected frame is resized to ``(h' * s, w' * s)`` where ``s``
is the teacher's stride (its patch size; 16 for CLIP ViT-B/16 and the EfficientNet-Lite0 stride-16 map), so the
teacher's grid equals the student's ``h' x w'``; ViT teachers interpolate their position embeddings to that grid
once, at construction. With ``resize="native"`` frames go in at the teacher's own training size instead and the
feature map is adaptive-average-pooled to ``h' x w'``. Any grid that still differs (e.g. a stride that does not
divide the frame) is pooled the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smile_video.data.normalize import to_float

__all__ = ["Teacher", "ImageTeacher", "first_frames", "resolve_autocast_dtype"]


def first_frames(video: Tensor, tubelet: int, per_tubelet: int = 1) -> Tensor:
    """The first `per_tubelet` frames of every tubelet (1: the paper's target frame; `tubelet`: every frame),
    batched: ``(B, C, T, H, W) -> (B * T' * per_tubelet, C, H, W)``, ``T' = T / tubelet``.

    Frames are ordered ``(b, t', j)`` row-major (frame ``t' * tubelet + j``), so a reshape to ``(B, T', per_tubelet,
    ...)`` recovers the clip structure.
    """
    B, C, T, H, W = video.shape
    if T % tubelet:
        raise ValueError(f"teacher: clip has T={T} frames, not a multiple of the tubelet size {tubelet}")
    frames = video.unflatten(2, (T // tubelet, tubelet))[:, :, :, :per_tubelet]  # (B, C, T', k, H, W)
    return frames.permute(0, 2, 3, 1, 4, 5).reshape(-1, C, H, W)  # (B*T'*k, C, H, W)


def resolve_autocast_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """``teacher.dtype`` -> the autocast dtype on ``device`` (None = plain fp32)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if dtype == "bfloat16":
        return torch.bfloat16
    if dtype == "float32":
        return None
    raise ValueError(f"teacher.dtype: {dtype!r} is not one of ['auto', 'float32', 'bfloat16']")


class Teacher(nn.Module):
    """Frozen target model. Subclasses implement ``_targets``; ``forward`` adds the freezing guarantees.

    ``grid`` is the student's ``(T', h', w')``, ``tubelet`` its tubelet size; ``dim`` the target dimension D.
    """

    dim: int

    def __init__(self, dim: int, grid: tuple[int, int, int], tubelet: int, dtype: str = "auto") -> None:
        super().__init__()
        self.dim = int(dim)
        self.grid = tuple(int(g) for g in grid)
        self.tubelet = int(tubelet)
        self.dtype_mode = dtype
        resolve_autocast_dtype(dtype, torch.device("cpu"))  # validate early

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def freeze(self) -> Teacher:
        """Freeze every parameter and switch to eval mode (subclasses call this at the end of ``__init__``)."""
        self.requires_grad_(False)
        return super().train(False)

    def keep_weights_in(self, dtype: torch.dtype) -> Teacher:
        """Store the floating-point weights and buffers in `dtype` (e.g. bf16), except the input normalisation
        (``mean`` / ``std``). Under autocast, frozen fp32 weights are cast again at every forward (autocast caches
        casts only for weights that require grad); weights kept in bf16 skip those casts. Matmuls see the same bf16
        weights either way; layers autocast runs in fp32 (norms) see bf16-rounded weights."""
        for name, tensor in [*self.named_parameters(), *self.named_buffers()]:
            if tensor.is_floating_point() and name.rsplit(".", 1)[-1] not in ("mean", "std"):
                tensor.data = tensor.data.to(dtype)
        return self

    def train(self, mode: bool = True) -> Teacher:
        """A teacher stays in eval mode whatever is asked (BatchNorm statistics and dropout never change)."""
        return super().train(False)

    def _check(self, video: Tensor) -> None:
        if video.dim() != 5 or video.shape[1] != 3:
            raise ValueError(f"teacher: expected a raw clip (B, 3, T, H, W), got shape {tuple(video.shape)}")
        t, h, w = self.grid
        if video.shape[2] != t * self.tubelet:
            raise ValueError(f"teacher: clip has T={video.shape[2]} frames, the student grid expects "
                             f"{t} tubelets x {self.tubelet} = {t * self.tubelet}")

    def _targets(self, video: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, video: Tensor) -> Tensor:
        """Raw clip ``(B, 3, T, H, W)`` uint8 / float [0, 1] -> targets ``(B, N, D)`` float32 in token order."""
        self._check(video)
        with torch.inference_mode():
            amp = resolve_autocast_dtype(self.dtype_mode, video.device)
            with torch.autocast(video.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                out = self._targets(video)
            out = out.float()
        # A clone outside inference mode is an ordinary tensor: the loss may save it for backward.
        return out.clone()

    @torch.no_grad()
    def targets_for_masks(self, video: Tensor, num_masks: int) -> Tensor:
        """Run the teacher once per clip and repeat its targets for ``num_masks`` masks of the same clip.

        ``(B, 3, T, H, W) -> (B * num_masks, N, D)``, clip-major: rows ``b * num_masks + k`` belong to clip ``b``.
        """
        return self(video).repeat_interleave(num_masks, dim=0)


class ImageTeacher(Teacher):
    """A per-frame image encoder: frame selection, resizing, input normalisation, chunking and grid pooling.

    Subclasses implement ``encode(frames) -> (F, D, h, w)`` on normalised frames of size ``self.frame_size``.
    """

    def __init__(self, dim: int, grid: tuple[int, int, int], tubelet: int, frame_size: tuple[int, int],
                 mean: tuple[float, ...], std: tuple[float, ...], dtype: str = "auto", frame_chunk: int = 0) -> None:
        super().__init__(dim, grid, tubelet, dtype)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.frame_chunk = int(frame_chunk)
        self.frames_per_token = 1  # 1: the first frame of each tubelet (the paper); tubelet: every frame
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def encode(self, frames: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Normalised frames ``(F, 3, *frame_size)`` -> feature map ``(F, D, h, w)``."""
        raise NotImplementedError

    def prepare(self, frames: Tensor) -> Tensor:
        """Raw frames ``(F, 3, H, W)`` -> float, resized to ``frame_size``, normalised ``(F, 3, *frame_size)``."""
        x = to_float(frames)
        if tuple(x.shape[-2:]) != self.frame_size:
            x = F.interpolate(x, size=self.frame_size, mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def chunk_size(self, frames: Tensor) -> int:
        """Frames per `encode` call: ``frame_chunk``, or all of them when it is 0."""
        return self.frame_chunk or frames.shape[0]

    def feature_grid(self, frames: Tensor) -> Tensor:
        """Raw frames ``(F, 3, H, W)`` -> features on the student grid ``(F, D, h', w')``."""
        _, h, w = self.grid
        chunk = self.chunk_size(frames)
        outs = []
        for start in range(0, frames.shape[0], chunk):
            feat = self.encode(self.prepare(frames[start:start + chunk]))  # (f, D, h_t, w_t)
            if tuple(feat.shape[-2:]) != (h, w):
                feat = F.adaptive_avg_pool2d(feat.float(), (h, w))  # (f, D, h', w')
            outs.append(feat)
        return torch.cat(outs)

    def use_every_frame(self) -> ImageTeacher:
        """Targets from every frame of a tubelet (``teacher.frames=all``): ``dim`` becomes ``tubelet * dim``, the
        teacher runs on ``tubelet`` times as many frames. Returns self."""
        if self.frames_per_token == 1:
            self.frames_per_token = self.tubelet
            self.dim *= self.tubelet
        return self

    def _targets(self, video: Tensor) -> Tensor:
        B = video.shape[0]
        t, h, w = self.grid
        k = self.frames_per_token
        feat = self.feature_grid(first_frames(video, self.tubelet, k))  # (B*T'*k, D_teacher, h', w')
        feat = feat.view(B, t, k, self.dim // k, h, w).permute(0, 1, 4, 5, 2, 3)  # (B, T', h', w', k, D_teacher)
        return feat.reshape(B, t * h * w, self.dim)  # (B, N, k * D_teacher)
