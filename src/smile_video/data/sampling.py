"""Temporal sampling: which frame indices make a clip.

A clip is `num_frames` frames `stride` apart (paper F.3, after VideoMAE: 16 frames, stride 4 on K400, 2 on SSv2), so it
spans ``(num_frames - 1) * stride + 1`` frames. Train mode draws the start uniformly; test mode places `num_clips`
clips evenly (one clip: centred; several: first at the start, last at the end, as VideoMAE's multi-view testing).

Short videos. VideoMAE clamps indices past the end to the last frame, which freezes the tail of the clip. We instead
**shrink the stride** to the largest one whose span fits (down to 1), keeping every frame distinct and the motion
continuous. A video with fewer than `min_frames` frames (default: `num_frames`, i.e. stride 1 no longer fits) is
**too short** and is skipped by the dataset. If a caller lowers `min_frames` below `num_frames`, the remaining gap is
filled by spreading the available frames evenly (each repeated about equally), never by looping.

Keyframe-aligned starts (opt-in, `keyframe_train_indices`). Decoding a clip starts at the keyframe before its first
frame, so with long GOPs (x264's default keyint is 250) most of a clip's decode is this lead-in. Restricting starts to
at most `window` frames after a keyframe removes it, at a cost: starts are no longer uniform. Content right after a
keyframe (the start of a shot: encoders place keyframes at scene cuts) is over-sampled, and with keyframes 250 frames
apart a 10 s clip has one or two possible start regions instead of ~240 starts. On re-encoded short-GOP files
(`smile data-reencode`, keyframes every 16 frames) the bias is small.
"""

from __future__ import annotations

import torch

__all__ = ["TooShortError", "clip_span", "fitted_stride", "train_indices", "keyframe_train_indices", "eval_indices",
           "check_length"]


class TooShortError(ValueError):
    """A video with fewer frames than the sampler's minimum."""


def clip_span(num_frames: int, stride: int) -> int:
    """Frames covered by a clip of `num_frames` frames `stride` apart."""
    return (num_frames - 1) * stride + 1


def check_length(length: int, num_frames: int, min_frames: int | None = None) -> None:
    """Raise `TooShortError` when a video of `length` frames is below `min_frames` (default `num_frames`)."""
    need = num_frames if min_frames is None else min_frames
    if length < max(need, 1):
        raise TooShortError(f"too short: {length} frames, need at least {need}")


def fitted_stride(length: int, num_frames: int, stride: int) -> int:
    """`stride`, or the largest smaller stride (>= 1) whose clip fits in `length` frames."""
    if num_frames <= 1:
        return stride
    return max(1, min(stride, (length - 1) // (num_frames - 1)))


def _clip_at(start: int, length: int, num_frames: int, stride: int) -> torch.Tensor:
    if clip_span(num_frames, stride) <= length:
        return start + stride * torch.arange(num_frames)  # (num_frames,)
    # Fewer frames than num_frames (only when min_frames < num_frames): spread them evenly, repeating some.
    return torch.div(torch.arange(num_frames) * length, num_frames, rounding_mode="floor")


def train_indices(length: int, num_frames: int, stride: int, generator: torch.Generator,
                  min_frames: int | None = None) -> torch.Tensor:
    """A training clip with a uniformly random start -> ``(num_frames,)`` int64 indices in ``[0, length)``."""
    check_length(length, num_frames, min_frames)
    s = fitted_stride(length, num_frames, stride)
    slack = max(length - clip_span(num_frames, s), 0)
    start = int(torch.randint(slack + 1, (1,), generator=generator))
    return _clip_at(start, length, num_frames, s)


def keyframe_train_indices(length: int, num_frames: int, stride: int, key_frames: list[int] | None, window: int,
                           generator: torch.Generator, min_frames: int | None = None) -> torch.Tensor:
    """A training clip whose start is drawn uniformly among the positions at most `window` frames after a keyframe
    (`key_frames`: sorted indices in ``[0, length)``) where the clip fits -> ``(num_frames,)`` int64 indices.

    Falls back to `train_indices` (uniform start) when no such position exists or the keyframes are unknown (None).
    """
    check_length(length, num_frames, min_frames)
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    s = fitted_stride(length, num_frames, stride)
    slack = max(length - clip_span(num_frames, s), 0)
    starts = sorted({k + j for k in (key_frames or []) for j in range(window + 1) if 0 <= k + j <= slack})
    if not starts:
        return train_indices(length, num_frames, stride, generator, min_frames)
    start = starts[int(torch.randint(len(starts), (1,), generator=generator))]
    return _clip_at(start, length, num_frames, s)


def eval_indices(length: int, num_frames: int, stride: int, num_clips: int = 1,
                 min_frames: int | None = None) -> torch.Tensor:
    """`num_clips` evenly placed clips -> ``(num_clips, num_frames)`` int64 indices (deterministic)."""
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    check_length(length, num_frames, min_frames)
    s = fitted_stride(length, num_frames, stride)
    slack = max(length - clip_span(num_frames, s), 0)
    if num_clips == 1:
        starts = [slack // 2]
    else:
        starts = [round(k * slack / (num_clips - 1)) for k in range(num_clips)]
    return torch.stack([_clip_at(st, length, num_frames, s) for st in starts])  # (num_clips, num_frames)
