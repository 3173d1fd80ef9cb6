"""torchcodec (PyTorch's video decoder) as a `VideoReader`: on the CPU, or on a GPU with NVDEC (``device="cuda"``).

torchcodec needs FFmpeg's shared libraries (libavcodec and friends, FFmpeg 4 to 8) on the system, e.g.
``apt-get install ffmpeg``; without them it imports but cannot decode, and `torchcodec_available()` is False.

The decoder is opened in ``exact`` seek mode (it scans the file once, as our PyAV reader does, so frame counts and
keyframes are exact) with one FFmpeg thread (parallelism comes from DataLoader workers). `get_frames_at` decodes the
wanted frames in one call, seeking to the keyframe before the first one and only again where a later gap is longer
than decoding through it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from .decode import VideoDecodeError, VideoReader

__all__ = ["TorchCodecReader", "torchcodec_available"]


@functools.lru_cache(maxsize=1)
def torchcodec_available() -> bool:
    """torchcodec is installed and its FFmpeg libraries load (checked once per process)."""
    try:  # older torchcodec loads FFmpeg when the decoders are imported, or fails there
        from torchcodec._core import ops
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except (ImportError, OSError, RuntimeError):
        return False
    # torchcodec >= 0.10 imports without FFmpeg (its image decoders do not need it) and fails at the first video; it
    # records whether its FFmpeg-dependent core loaded.
    return getattr(ops, "_FFMPEG_AVAILABLE", True) is not False


class TorchCodecReader(VideoReader):
    """An open video read by torchcodec; `get_frames` returns ``(N, H, W, 3)`` uint8 on `device`."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        self.path, self.device = str(path), device
        if not os.path.isfile(self.path):
            raise VideoDecodeError(self.path, "missing: no such file")
        if not torchcodec_available():
            raise VideoDecodeError(self.path, "decoder 'torchcodec' cannot run here (pip install torchcodec; it also "
                                              "needs FFmpeg's shared libraries, e.g. apt-get install ffmpeg)")
        from torchcodec.decoders import VideoDecoder

        try:
            self._dec = VideoDecoder(self.path, seek_mode="exact", num_ffmpeg_threads=1, dimension_order="NHWC",
                                     device=device)
            meta = self._dec.metadata
            self.num_frames = int(meta.num_frames or 0)
            self.fps = float(meta.average_fps or 0.0)
        except (RuntimeError, ValueError) as e:
            raise VideoDecodeError(self.path, f"cannot open ({type(e).__name__}: {_first_line(e)})") from None
        if self.num_frames == 0:
            raise VideoDecodeError(self.path, "no frames")

    def _read(self, wanted: list[int]) -> dict[int, np.ndarray]:  # pragma: no cover - get_frames is overridden
        frames = self._decode(wanted)
        return {i: f.cpu().numpy() for i, f in zip(wanted, frames)}

    def _decode(self, wanted: list[int]) -> torch.Tensor:
        try:
            return self._dec.get_frames_at(wanted).data  # (N, H, W, 3) uint8 on self.device
        except (RuntimeError, ValueError, IndexError) as e:
            raise VideoDecodeError(self.path, f"corrupt data ({type(e).__name__}: {_first_line(e)})") from None

    def get_frames(self, indices) -> torch.Tensor:
        """Frames at `indices` (any order, repeats allowed) -> ``(N, H, W, 3)`` uint8 on the reader's device."""
        indices = self._checked_indices(indices)
        wanted = sorted(set(indices))
        frames = self._decode(wanted)  # (len(wanted), H, W, 3)
        if wanted == indices:
            return frames
        where = {i: k for k, i in enumerate(wanted)}
        return frames[torch.tensor([where[i] for i in indices], device=frames.device)]

    @property
    def key_frames(self) -> list[int] | None:
        try:
            return sorted(int(k) for k in self._dec._get_key_frame_indices())  # private in torchcodec <= 0.17
        except (AttributeError, RuntimeError):
            return None

    def close(self) -> None:
        self._dec = None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else ""
