"""Re-encode videos once for fast training reads: short side `short_side` (default 320, as Kinetics users keep it),
H.264 with a keyframe every `gop` frames (default 16).

Why: decoding a clip starts at the keyframe before its first frame. Files from the wild use long GOPs (x264's default
keyint is 250), so most of a clip's decode is this lead-in (docs/benchmarks.md measures it). With keyframes every 16
frames the lead-in is 7.5 frames on average, at a size cost that benchmarks/data.py measures as well.

Every frame is kept, in order, at the source's average frame rate, so frame indices (and a list's `start` / `total`
segments) mean the same frames afterwards; audio and other streams are dropped. The output is written to a temporary
name and renamed, so an interrupted run leaves no half-written file.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from .decode import VideoDecodeError

__all__ = ["reencode_video", "output_size"]


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) scaled so the short side is at most `short_side` (0 = keep), both even (yuv420p)."""
    scale = min(1.0, short_side / min(width, height)) if short_side else 1.0
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def reencode_video(src: str | Path, dst: str | Path, short_side: int = 320, gop: int = 16, crf: int = 23,
                   preset: str = "veryfast", threads: int = 1) -> dict[str, Any]:
    """Re-encode `src` to the mp4 `dst`; returns ``{"frames", "width", "height", "src_bytes", "dst_bytes"}``.

    Raises `VideoDecodeError` (naming `src`) when the source cannot be read; `dst` is then not created.
    """
    if gop < 1 or crf < 0 or short_side < 0:
        raise ValueError(f"reencode_video: gop must be >= 1, crf >= 0 and short_side >= 0, got {gop}, {crf}, "
                         f"{short_side}")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise VideoDecodeError(src, "missing: no such file")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part.mp4")
    frames = 0
    try:
        with av.open(str(src)) as inp:
            if not inp.streams.video:
                raise VideoDecodeError(src, "no video stream")
            stream = inp.streams.video[0]
            stream.thread_count = threads
            listed = stream.frames  # the header's count (0 when unknown)
            rate = stream.average_rate or stream.guessed_rate or Fraction(30)
            width, height = output_size(stream.codec_context.width, stream.codec_context.height, short_side)
            with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "faststart"}) as out:
                rate = Fraction(rate).limit_denominator(1001)
                step = Fraction(rate.denominator, rate.numerator)  # one frame, in seconds
                enc = out.add_stream("libx264", rate=rate)
                enc.codec_context.time_base = step
                enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
                enc.codec_context.thread_count = threads
                enc.codec_context.gop_size = gop
                enc.options = {"crf": str(crf), "preset": preset, "x264-params": f"keyint={gop}:min-keyint={gop}"}
                for frame in inp.decode(stream):
                    small = frame.reformat(width=width, height=height, format="yuv420p")
                    small.pts, small.time_base = frames, step  # frames in presentation order, at the average rate
                    for packet in enc.encode(small):
                        out.mux(packet)
                    frames += 1
                for packet in enc.encode(None):
                    out.mux(packet)
        if frames == 0:
            raise VideoDecodeError(src, "no frames could be decoded")
        if listed and frames < listed:
            raise VideoDecodeError(src, f"truncated: the header lists {listed} frames, {frames} could be decoded")
        os.replace(tmp, dst)
    except av.FFmpegError as e:
        raise VideoDecodeError(src, f"cannot re-encode ({type(e).__name__}: {e})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return {"frames": frames, "width": width, "height": height, "src_bytes": src.stat().st_size,
            "dst_bytes": dst.stat().st_size}
