"""Frame-accurate decoding of selected frames: PyAV, decord and torchcodec (when installed), frame folders.

Every reader gives ``get_frames(indices) -> (N, H, W, 3) uint8`` in the order asked (repeats allowed), with frame
``i`` the i-th frame in presentation order. Every failure (missing file, no video stream, corrupt or truncated data,
an index past the end) raises `VideoDecodeError`, whose message starts with the file's path.

PyAV reader: at open it demuxes the stream once without decoding, which gives the exact frame count and each frame's
timestamp and keyframe flag (exact for variable frame rates too). `get_frames` then seeks to the last keyframe at or
before the first wanted frame and decodes only up to the last wanted one.

Choosing a decoder: `resolve_decoder("auto")` is the first installed of `AUTO_ORDER` (the fastest per core in
benchmarks/data.py; docs/benchmarks.md). Every reader also gives `key_frames` (sorted keyframe indices, or None when
the decoder cannot tell), which keyframe-aligned start sampling uses.
"""

from __future__ import annotations

import bisect
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from PIL import Image

from .lists import IMAGE_EXTENSIONS

__all__ = ["VideoDecodeError", "VideoReader", "PyAVReader", "DecordReader", "FrameFolderReader", "DECODERS",
           "AUTO_ORDER", "decord_available", "decoder_available", "installed_decoders", "resolve_decoder",
           "open_video", "decode_frames", "count_frames", "check_video"]

DECODERS = ("pyav", "decord", "torchcodec")
# `auto` takes the first installed of these: fastest first per CPU core, as measured by benchmarks/data.py
# (docs/benchmarks.md: PyAV leads since it skips unreferenced frames). On the GPU only torchcodec decodes.
AUTO_ORDER = ("pyav", "torchcodec", "decord")


class VideoDecodeError(RuntimeError):
    """A video that cannot be used; `path` and `reason` are kept for reports."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def decoder_available(name: str) -> bool:
    """Whether decoder `name` can run here (torchcodec also needs FFmpeg's shared libraries)."""
    if name == "pyav":
        return True
    if name == "decord":
        return decord_available()
    if name == "torchcodec":
        from .torchcodec_reader import torchcodec_available

        return torchcodec_available()
    raise ValueError(f"unknown decoder {name!r}; choose one of {list(DECODERS)}")


def installed_decoders() -> list[str]:
    """The decoders that can run here, in `AUTO_ORDER`."""
    return [name for name in AUTO_ORDER if decoder_available(name)]


def resolve_decoder(name: str, device: str = "cpu") -> str:
    """``auto`` -> the fastest installed decoder on the CPU, or torchcodec (the one that decodes there) for
    ``device="cuda"``; a named decoder is returned as is (checked to be known)."""
    if name == "auto":
        if device != "cpu":
            if not decoder_available("torchcodec"):
                raise ValueError(f"decoding on {device!r} needs torchcodec with FFmpeg's libraries, which cannot run "
                                 "here (pip install torchcodec; apt-get install ffmpeg)")
            return "torchcodec"
        return installed_decoders()[0]
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; choose one of {['auto', *DECODERS]}")
    return name


def _describe(e: BaseException) -> str:
    """An exception as `Type: message`, without the file name PyAV appends."""
    text = getattr(e, "strerror", None) or str(e)
    return f"{type(e).__name__}: {text}"


class VideoReader(ABC):
    """An open video. Use as a context manager; `num_frames` and `fps` are known after opening."""

    path: str
    num_frames: int
    fps: float

    @property
    def key_frames(self) -> list[int] | None:
        """Sorted indices of the keyframes (decoding can start there without a lead-in); None = unknown."""
        return None

    @abstractmethod
    def _read(self, wanted: list[int]) -> dict[int, np.ndarray]:
        """Sorted unique in-range indices -> (H, W, 3) uint8 frames."""

    def _checked_indices(self, indices: Sequence[int]) -> list[int]:
        """`indices` as ints; ValueError when empty, VideoDecodeError naming the first one outside the video."""
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError(f"{self.path}: get_frames needs at least one index")
        bad = [i for i in indices if not 0 <= i < self.num_frames]
        if bad:
            raise VideoDecodeError(self.path, f"frame index {bad[0]} is outside [0, {self.num_frames})")
        return indices

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames at `indices` (any order, repeats allowed) -> ``(N, H, W, 3)`` uint8."""
        indices = self._checked_indices(indices)
        frames = self._read(sorted(set(indices)))
        shapes = {f.shape for f in frames.values()}
        if len(shapes) > 1:
            raise VideoDecodeError(self.path, f"frames change size within the video: {sorted(shapes)}")
        return torch.from_numpy(np.stack([frames[i] for i in indices]))  # (N, H, W, 3)

    def iter_frames(self, chunk: int = 32) -> Iterator[np.ndarray]:
        """Every frame in order, ``(H, W, 3)`` uint8 each, without holding the whole video in memory."""
        for a in range(0, self.num_frames, chunk):
            yield from self.get_frames(range(a, min(a + chunk, self.num_frames))).numpy()

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PyAVReader(VideoReader):
    # Frames between the keyframe and the last wanted frame that no frame references are not decoded (`_decode_from`).
    # False decodes every one of them: for files whose encoder marks referenced frames as unreferenced (a broken
    # stream; the wanted frames would then show artefacts), or to measure the gain (benchmarks/data.py).
    skip_unreferenced: bool = True

    def __init__(self, path: str | Path):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise VideoDecodeError(self.path, "missing: no such file")
        self._container = None
        # One colour converter for every frame of the reader: a frame's own `to_ndarray(format="rgb24")` builds a new
        # swscale context per frame, which was 80% of decoding a 320p H.264 frame (4.8 of 5.9 ms; docs/benchmarks.md).
        self._rgb = VideoReformatter()
        self._open()
        try:
            self._index()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        self.close()
        try:
            self._container = av.open(self.path)
        except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise VideoDecodeError(self.path, f"cannot open ({_describe(e)})") from None
        if not self._container.streams.video:
            self.close()
            raise VideoDecodeError(self.path, "no video stream")
        self._stream = self._container.streams.video[0]
        # One decoder thread (and one colour-conversion thread, `_to_rgb`). FFmpeg's worker threads do not survive a
        # fork: a codec or swscale context with a thread pool, freed in a forked DataLoader worker (its garbage
        # collector reaching a reader the parent had not yet collected), waited forever for threads that do not
        # exist in that process (tested; it hung `pytest tests/test_decode.py tests/test_dataset.py`). Nothing is
        # lost: the loader runs one process per core, and PyAV's default slice threading does not split a one-slice
        # H.264 frame (x264's default) anyway; torchcodec and the paper's decord path also decode on one thread.
        self._stream.codec_context.thread_count = 1
        self._used = False

    def _index(self) -> None:
        """Demux once (no decoding): presentation timestamps and keyframe flags of every frame."""
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        pts: list[int | None] = []
        keys: list[bool] = []
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0:  # the flush packet at the end
                    continue
                pts.append(packet.pts)
                keys.append(bool(packet.is_keyframe))
        except av.FFmpegError as e:
            raise VideoDecodeError(self.path, f"corrupt container ({_describe(e)})") from None
        self.num_frames = len(pts)
        if self.num_frames == 0:
            raise VideoDecodeError(self.path, "no frames")
        if stream.frames and self.num_frames < stream.frames:
            raise VideoDecodeError(self.path, f"truncated: the header lists {stream.frames} frames, the file holds "
                                              f"{self.num_frames}")
        # Exact timestamp -> frame index mapping when every packet has a distinct pts; else decode sequentially.
        self._exact = None not in pts and len(set(pts)) == len(pts)
        if self._exact:
            order = sorted(pts)  # presentation order (packets come in decoding order)
            self._pts_to_index = {p: i for i, p in enumerate(order)}
            key_pts = {p for p, k in zip(pts, keys) if k}
            self._key_indices = [i for i, p in enumerate(order) if p in key_pts]
            self._order = order
        self._used = True  # demuxing consumed the container

    @property
    def key_frames(self) -> list[int] | None:
        return list(self._key_indices) if self._exact else None

    def _rewind(self) -> None:
        """A container at the start: reopened only after use (a fresh one is the most reliable rewind)."""
        if self._used or self._container is None:
            self._open()

    def _decode_from(self, seek_index: int | None, sequential: bool = False, keep: set[int] | None = None):
        """Yield (index, frame) from the keyframe at `seek_index` (None = from the start). Indices come from the
        timestamps, or, with `sequential` (or no usable timestamps), from counting frames from the start.

        `keep` (frame indices; only with timestamps, not `sequential`): every other frame that no frame references
        (an H.264 / HEVC non-reference frame, e.g. most B-frames of x264's default) is not decoded at all, through
        FFmpeg's `skip_frame`, set packet by packet. Nothing that is decoded depends on a skipped frame, so the kept
        frames' pixels are unchanged (tested); it halves the decode of a strided clip from a long-GOP file
        (docs/benchmarks.md). Skipped frames are not yielded."""
        self._rewind()
        self._used = True
        container, stream = self._container, self._stream
        timestamps = self._exact and not sequential
        if seek_index is not None and seek_index > 0 and timestamps:
            container.seek(self._order[seek_index], stream=stream, backward=True, any_frame=False)
        context = stream.codec_context
        skip = keep is not None and timestamps and self.skip_unreferenced
        keep_pts = {self._order[i] for i in keep} if skip else None
        counter = 0
        for packet in container.demux(stream):
            if keep_pts is not None:  # the final flush packet has no pts: decode (drain) it as usual
                context.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in keep_pts else "NONREF"
            for frame in context.decode(packet):
                if timestamps:
                    if frame.pts is None or frame.pts not in self._pts_to_index:
                        raise _Resync()
                    yield self._pts_to_index[frame.pts], frame
                else:
                    yield counter, frame
                    counter += 1

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """A decoded frame -> (H, W, 3) uint8 RGB through the reader's one converter (the pixels of the frame's own
        `to_ndarray(format="rgb24")`, tested)."""
        # threads=1: swscale's default (auto) starts a thread pool, with the fork hazard of the decoder's (`_open`)
        return self._rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()

    def _read(self, wanted: list[int]) -> dict[int, np.ndarray]:
        first, last = wanted[0], wanted[-1]
        seek_index = None
        if self._exact and self._key_indices:
            k = bisect.bisect_right(self._key_indices, first) - 1
            seek_index = self._key_indices[max(k, 0)]
        for attempt in range(2):
            want = set(wanted)
            out: dict[int, np.ndarray] = {}
            try:
                for index, frame in self._decode_from(seek_index, sequential=attempt == 1, keep=want):
                    if attempt == 0 and not out and index > first:
                        raise _Resync()  # the seek overshot: start again from the beginning
                    if index in want:
                        out[index] = self._to_rgb(frame)
                    if index >= last:
                        break
            except _Resync:  # timestamps disagree with the index (or the seek overshot): count from the start
                continue
            except av.FFmpegError as e:
                raise VideoDecodeError(self.path, f"corrupt data ({_describe(e)})") from None
            missing = sorted(want - set(out))
            if missing:
                raise VideoDecodeError(self.path, f"truncated: frame {missing[0]} of {self.num_frames} listed "
                                                  f"frames could not be decoded")
            return out
        raise AssertionError("unreachable: the sequential attempt does not resync")  # pragma: no cover

    def iter_frames(self, chunk: int = 32) -> Iterator[np.ndarray]:
        """One sequential decoding pass (no seeks)."""
        self._rewind()
        self._used = True
        count = 0
        try:
            for frame in self._container.decode(self._stream):
                count += 1
                yield self._to_rgb(frame)
        except av.FFmpegError as e:
            raise VideoDecodeError(self.path, f"corrupt data at frame {count} ({_describe(e)})") from None
        if count < self.num_frames:
            raise VideoDecodeError(self.path, f"truncated: decoded {count} of {self.num_frames} frames")

    def close(self) -> None:
        if getattr(self, "_container", None) is not None:
            self._container.close()
            self._container = None
        self._stream = None  # the stream keeps its codec context (and FFmpeg's decoder state) alive


class _Resync(Exception):
    """Internal: frame timestamps do not line up with the index; decode again from the start."""


class DecordReader(VideoReader):
    def __init__(self, path: str | Path):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise VideoDecodeError(self.path, "missing: no such file")
        try:
            import decord
        except ImportError:
            raise VideoDecodeError(self.path, "decoder 'decord' is not installed (pip install decord)") from None
        try:
            self._vr = decord.VideoReader(self.path, num_threads=1)
            self.num_frames = len(self._vr)
            self.fps = float(self._vr.get_avg_fps())
        except Exception as e:  # noqa: BLE001 - decord raises its own DECORDError and RuntimeError
            raise VideoDecodeError(self.path, f"cannot open ({_describe(e)})") from None
        if self.num_frames == 0:
            raise VideoDecodeError(self.path, "no frames")

    def _read(self, wanted: list[int]) -> dict[int, np.ndarray]:
        try:
            batch = self._vr.get_batch(wanted).asnumpy()
        except Exception as e:  # noqa: BLE001
            raise VideoDecodeError(self.path, f"corrupt data ({_describe(e)})") from None
        return dict(zip(wanted, batch))

    @property
    def key_frames(self) -> list[int] | None:
        return sorted(int(k) for k in self._vr.get_key_indices())

    def close(self) -> None:
        self._vr = None


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


class FrameFolderReader(VideoReader):
    """A directory of images, one per frame, in natural name order (img_2 before img_10)."""

    def __init__(self, path: str | Path, fps: float = 30.0):
        self.path = str(path)
        if not os.path.isdir(self.path):
            raise VideoDecodeError(self.path, "missing: no such frame folder")
        self._files = sorted((f for f in os.listdir(self.path) if f.lower().endswith(IMAGE_EXTENSIONS)),
                             key=_natural_key)
        self.num_frames, self.fps = len(self._files), fps
        if not self._files:
            raise VideoDecodeError(self.path, f"no frames: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")

    def _read(self, wanted: list[int]) -> dict[int, np.ndarray]:
        out = {}
        for i in wanted:
            file = os.path.join(self.path, self._files[i])
            try:
                with Image.open(file) as im:
                    out[i] = np.asarray(im.convert("RGB"))
            except (OSError, SyntaxError) as e:
                raise VideoDecodeError(self.path, f"corrupt frame {self._files[i]} ({e})") from None
        return out


def open_video(path: str | Path, decoder: str = "pyav", device: str = "cpu") -> VideoReader:
    """Open a video file with `decoder` ('pyav', 'decord', 'torchcodec' or 'auto'), or a frame folder (any decoder).

    `device`: where frames are decoded to; 'cuda' (NVDEC) needs torchcodec. Frame folders are read on the CPU.
    """
    decoder = resolve_decoder(decoder, device)
    if device != "cpu" and decoder != "torchcodec":
        raise ValueError(f"decoding on {device!r} needs decoder 'torchcodec', got {decoder!r}")
    if os.path.isdir(path):
        return FrameFolderReader(path)
    if decoder == "torchcodec":
        from .torchcodec_reader import TorchCodecReader

        return TorchCodecReader(path, device=device)
    return DecordReader(path) if decoder == "decord" else PyAVReader(path)


def decode_frames(path: str | Path, indices: Sequence[int], decoder: str = "pyav") -> torch.Tensor:
    """Frames at `indices` of one video -> ``(N, H, W, 3)`` uint8. Raises `VideoDecodeError`."""
    with open_video(path, decoder) as reader:
        return reader.get_frames(indices)


def count_frames(path: str | Path, decoder: str = "pyav") -> int:
    """Number of frames (exact: from demuxed packets for PyAV, the image count for frame folders)."""
    with open_video(path, decoder) as reader:
        return reader.num_frames


def check_video(path: str | Path, decoder: str = "pyav", full: bool = True, chunk: int = 32) -> int:
    """Decode a video to prove it is usable; returns its frame count. Raises `VideoDecodeError`.

    `full`: decode every frame (in chunks of `chunk`, so memory stays small); else only the first and last frame.
    """
    with open_video(path, decoder) as reader:
        n = reader.num_frames
        if full:
            for _ in reader.iter_frames(chunk):
                pass
        else:
            reader.get_frames(sorted({0, n - 1}))
        return n
