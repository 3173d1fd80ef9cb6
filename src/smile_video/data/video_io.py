"""Write and read whole videos (mp4 through PyAV). For sampled decoding use `smile_video.data.decode`."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

__all__ = ["write_video", "read_video", "available_codec"]

_CODEC_PREFERENCE = ("libx264", "h264", "mpeg4")


def available_codec() -> str:
    """The first mp4 video encoder this PyAV build has: libx264 / h264, else mpeg4."""
    for name in _CODEC_PREFERENCE:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises different errors for unknown codecs across versions
            continue
    raise RuntimeError(f"this PyAV build has none of the encoders {list(_CODEC_PREFERENCE)}")


def write_video(path: str | Path, frames: torch.Tensor | np.ndarray, fps: float = 25.0, codec: str | None = None,
                quality: int = 18, gop: int | None = None) -> Path:
    """Write `frames` ``(T, H, W, 3)`` uint8 RGB to an mp4 (or any container PyAV infers from the suffix).

    H and W must be even (yuv420p). `quality`: x264 CRF (lower is better; 0 is near-lossless) or, for mpeg4,
    scales the bit rate inversely. `gop`: frames between keyframes (None = the encoder's default).
    Returns the path written.
    """
    path = Path(path)
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video({path}): frames must be uint8 (T, H, W, 3), got {frames.dtype} "
                         f"{tuple(frames.shape)}")
    t, h, w, _ = frames.shape
    if t == 0 or h % 2 or w % 2:
        raise ValueError(f"write_video({path}): need at least one frame and even H, W (yuv420p), got T={t}, "
                         f"H={h}, W={w}")
    codec = codec or available_codec()
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    # faststart: the index (moov) goes first, as in most downloaded videos; a cut file then opens but is short.
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # One encoder thread: the same frames give the same bytes for most clips, not all. PyAV's libx264 gives two
        # different encodings of some clips from run to run even at one thread and with explicit timestamps (~1 % of
        # the embedded benchmark's 64-px clips; decoded pixels differ by up to ~36 levels, mean < 2); measured in
        # docs/fidelity.md section 23 B, cause inside the encoder not found.
        stream.codec_context.thread_count = 1
        if gop is not None:
            stream.codec_context.gop_size = gop
        if "264" in codec:
            stream.options = {"crf": str(quality), "preset": "veryfast"}
        else:
            # mpeg4 has no CRF: a generous bit rate (about 2 bits per pixel at quality 18) plays the same role.
            stream.bit_rate = max(100_000, int(w * h * float(rate) * 36 / max(quality, 1)))
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def read_video(path: str | Path, decoder: str = "pyav") -> tuple[torch.Tensor, float]:
    """Every frame of a video (or frame folder): ``((T, H, W, 3) uint8, fps)``. Raises `VideoDecodeError`."""
    from .decode import open_video

    with open_video(path, decoder) as reader:
        return reader.get_frames(list(range(reader.num_frames))), reader.fps
