"""`VideoClipDataset`: raw uint8 clips from a video list, deterministic per (seed, epoch, index), robust to bad files.

Randomness: item ``i`` of epoch ``e`` draws everything (temporal starts, crops, flips) from a `torch.Generator` seeded
with a hash of ``(seed, e, i, attempt)``, so it does not depend on worker count, rank or order of access, and a
resumed run reproduces it exactly. The epoch comes from `set_epoch` or, for persistent DataLoader workers (which keep
their own copy of the dataset), from indexing with an ``(epoch, index)`` pair.

Bad files: a missing, corrupt, truncated or too-short video is logged (once per file and process) and replaced by the
next entry, ``i + 1, i + 2, ...`` (wrapping), at most `max_skips` times; each skipped file and its reason are returned
under ``"skipped"`` so the engine can count them. More consecutive failures raise `TooManyBadVideos`.

Repeated augmentation (train mode, ``num_samples = S > 1``), as VideoMAE / SMILE pretraining do it: one clip's frames
are decoded once and S clips are made from them, each with its own multi-scale crop and flip (and, in the engine, its
own motion and mask). The draws of sample k come after those of samples 0..k-1 from the item's generator, so sample 0
is the clip the item would be with S = 1. `per_sample_start=True` is the older behaviour: each sample draws its own
start, so S clips cost about S decodes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import av
import torch

from ..config import DataConfig
from ..errors import JobError
from ..seeding import derive_seed
from .collate import collate
from .decode import VideoDecodeError, open_video, resolve_decoder
from .lists import VideoEntry, read_video_list
from .sampling import TooShortError, eval_indices, keyframe_train_indices, train_indices
from .transforms import spatial_views, train_transform

__all__ = ["VideoClipDataset", "TooManyBadVideos", "collate", "item_seed", "build_video_dataset"]

log = logging.getLogger(__name__)


class TooManyBadVideos(JobError):
    """Too many consecutive entries of a list could not be used."""


def item_seed(seed: int, epoch: int, index: int, attempt: int = 0) -> int:
    """The seed of one item's random draws: a pure function of its arguments."""
    return derive_seed(seed, epoch, index, attempt)


class VideoClipDataset(torch.utils.data.Dataset):
    """Clips from `entries`.

    Train mode: each item decodes one clip of its video and makes `num_samples` clips from it, each with its own
    multi-scale crop and flip (the paper's multiple sampling, F.3; with `per_sample_start`, each with its own start
    too). `start_sampling="keyframe"`: starts at most `keyframe_window` frames after a keyframe (sampling.py says what
    that biases). Test mode: ``test_views = (clips, crops)``
    evenly placed temporal clips times spatial crops, in clip-major order.

    Item: ``{"video": uint8 (S, 3, T, size, size)``, or ``(3, T, size, size)`` when S == 1 (S = num_samples in
    train mode, clips * crops in test mode); ``"label": int``; ``"index"``: the entry actually used (differs from
    the requested index when files were skipped); ``"skipped": ["path: reason", ...]}``.
    """

    def __init__(self, entries: list[VideoEntry], num_frames: int, sampling_rate: int, size: int, train: bool,
                 num_samples: int = 1, crop_scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66), flip: bool = False,
                 seed: int = 0, decoder: str = "pyav", test_views: tuple[int, int] = (1, 1),
                 min_frames: int | None = None, max_skips: int = 10, cache_frames: bool = False,
                 per_sample_start: bool = False, start_sampling: str = "uniform", keyframe_window: int = 0,
                 decode_device: str = "cpu"):
        if not entries:
            raise ValueError("VideoClipDataset: the list of entries is empty")
        if num_frames < 1 or sampling_rate < 1 or size < 1 or num_samples < 1:
            raise ValueError(f"VideoClipDataset: num_frames={num_frames}, sampling_rate={sampling_rate}, "
                             f"size={size} and num_samples={num_samples} must all be >= 1")
        if len(test_views) != 2 or min(test_views) < 1:
            raise ValueError(f"VideoClipDataset: test_views must be (clips, crops) >= 1, got {test_views}")
        if not crop_scales or not all(0 < s <= 1 for s in crop_scales):
            raise ValueError(f"VideoClipDataset: crop_scales must be non-empty and in (0, 1], got {crop_scales}")
        try:
            decoder = resolve_decoder(decoder, decode_device)
        except ValueError as e:
            raise ValueError(f"VideoClipDataset: {e}") from None
        if decode_device != "cpu" and decoder != "torchcodec":
            raise ValueError(f"VideoClipDataset: decoding on {decode_device!r} needs decoder 'torchcodec' (installed, "
                             f"with FFmpeg's libraries), got {decoder!r}")
        if start_sampling not in ("uniform", "keyframe") or keyframe_window < 0:
            raise ValueError(f"VideoClipDataset: start_sampling must be 'uniform' or 'keyframe' and keyframe_window "
                             f">= 0, got {start_sampling!r}, {keyframe_window}")
        if min_frames is not None and min_frames < 1:
            raise ValueError(f"VideoClipDataset: min_frames must be >= 1 (or None = num_frames), got {min_frames}")
        self.entries = list(entries)
        self.num_frames, self.sampling_rate, self.size, self.train = num_frames, sampling_rate, size, train
        self.num_samples, self.crop_scales, self.flip = num_samples, tuple(crop_scales), flip
        self.seed, self.decoder, self.test_views = seed, decoder, tuple(test_views)
        self.min_frames, self.max_skips = min_frames, max_skips
        self.per_sample_start, self.start_sampling, self.keyframe_window = per_sample_start, start_sampling, \
            keyframe_window
        self.decode_device = decode_device
        # cache_frames: keep every decoded file's frames in memory (uint8, per process) and decode each file once;
        # for small lists read for many epochs (the embedded benchmark: 320 clips, ~63 MB). Same frames as decoding.
        self.cache_frames = cache_frames
        self._frames: dict[str, tuple[torch.Tensor, list[int] | None]] = {}
        self.epoch = 0
        self._warned: set[str] = set()

    @property
    def clips_per_item(self) -> int:
        """S: clips each item holds."""
        return self.num_samples if self.train else self.test_views[0] * self.test_views[1]

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (self.epoch, int(key))
        if not 0 <= index < len(self.entries):
            raise IndexError(f"index {index} is outside [0, {len(self.entries)})")
        skipped: list[str] = []
        for attempt in range(self.max_skips + 1):
            j = (index + attempt) % len(self.entries)
            entry = self.entries[j]
            gen = torch.Generator().manual_seed(item_seed(self.seed, epoch, index, attempt))
            try:
                video = self.load(entry, gen)
            except (VideoDecodeError, TooShortError, av.FFmpegError, OSError) as e:
                reason = e.reason if isinstance(e, VideoDecodeError) else f"{e}"
                if entry.path not in self._warned:
                    self._warned.add(entry.path)
                    log.warning("skipping video %s: %s", entry.path, reason)
                skipped.append(f"{entry.path}: {reason}")
                continue
            return {"video": video, "label": entry.label, "index": j, "skipped": skipped}
        raise TooManyBadVideos(f"{len(skipped)} consecutive videos from index {index} failed (max_skips="
                               f"{self.max_skips}); check the list with `smile data-check`. Failures:\n  "
                               + "\n  ".join(skipped))

    def load(self, entry: VideoEntry, generator: torch.Generator) -> torch.Tensor:
        """Decode and transform the clips of one entry (raises on a bad file) -> ``(S, 3, T, size, size)`` or, for
        S == 1, ``(3, T, size, size)`` uint8."""
        if self.cache_frames:
            if entry.path not in self._frames:
                with open_video(entry.path, self.decoder, self.decode_device) as reader:
                    every = reader.get_frames(list(range(reader.num_frames)))  # (L, H, W, 3)
                    self._frames[entry.path] = every, reader.key_frames
            every, keys = self._frames[entry.path]
            idx = self._indices(entry, every.shape[0], keys, generator)
            frames = every[idx.flatten().to(every.device)]  # (C * T, H, W, 3)
        else:
            with open_video(entry.path, self.decoder, self.decode_device) as reader:
                keys = reader.key_frames if self.train and self.start_sampling == "keyframe" else None
                idx = self._indices(entry, reader.num_frames, keys, generator)
                frames = reader.get_frames(idx.flatten().tolist())  # (C * T, H, W, 3)
        c, t = idx.shape
        clips = frames.view(c, t, *frames.shape[1:]).permute(0, 4, 1, 2, 3)  # (C, 3, T, H, W)
        if self.train and c < self.num_samples:  # repeated augmentation: the same frames for every sample
            clips = clips.expand(self.num_samples, *clips.shape[1:])  # (S, 3, T, H, W), a view
        if self.train:
            out = torch.stack([train_transform(clip, self.size, self.crop_scales, self.flip, generator)
                               for clip in clips])  # (S, 3, T, size, size)
        else:
            out = torch.cat([spatial_views(clip, self.size, self.test_views[1]) for clip in clips])
        return out[0] if out.shape[0] == 1 else out

    def _indices(self, entry: VideoEntry, available: int, key_frames: list[int] | None,
                 generator: torch.Generator) -> torch.Tensor:
        """Frame indices in the file (C, T) for a file of `available` frames: C = 1 in train mode (one decoded clip
        shared by the samples), num_samples with `per_sample_start`, the number of test clips in test mode."""
        offset, length = self._segment(entry, available)
        if self.train:
            starts = self.num_samples if self.per_sample_start else 1
            if self.start_sampling == "keyframe":
                keys = None if key_frames is None else [k - offset for k in key_frames if 0 <= k - offset < length]
                idx = torch.stack([keyframe_train_indices(length, self.num_frames, self.sampling_rate, keys,
                                                          self.keyframe_window, generator, self.min_frames)
                                   for _ in range(starts)])
            else:
                idx = torch.stack([train_indices(length, self.num_frames, self.sampling_rate, generator,
                                                 self.min_frames) for _ in range(starts)])
        else:
            idx = eval_indices(length, self.num_frames, self.sampling_rate, self.test_views[0], self.min_frames)
        return idx + offset

    def _segment(self, entry: VideoEntry, available: int) -> tuple[int, int]:
        """(first frame, number of frames) of the entry's segment; frame folders ignore `start` (a name offset)."""
        offset = 0 if entry.start is None or os.path.isdir(entry.path) else entry.start
        length = available - offset if entry.total is None or entry.total < 0 else entry.total
        if offset < 0 or offset + length > available:
            raise VideoDecodeError(entry.path, f"the list asks for frames [{offset}, {offset + length}) but only "
                                               f"{available} could be read")
        return offset, length


def build_video_dataset(cfg: DataConfig, num_frames: int, size: int, seed: int, train: bool = True,
                        list_path: str | None = None) -> VideoClipDataset:
    """The dataset a `DataConfig` describes (`list_path` defaults to ``cfg.train_list``)."""
    entries = read_video_list(list_path or cfg.train_list, cfg.data_root, cfg.label_map or None)
    return VideoClipDataset(entries, num_frames=num_frames, sampling_rate=cfg.sampling_rate, size=size, train=train,
                            num_samples=cfg.num_samples if train else 1, crop_scales=tuple(cfg.crop_scales),
                            flip=cfg.flip, seed=seed, decoder=cfg.decoder, min_frames=cfg.min_frames or None,
                            max_skips=cfg.max_skips, per_sample_start=cfg.per_sample_start,
                            start_sampling=cfg.start_sampling, keyframe_window=cfg.keyframe_window,
                            decode_device=cfg.decode_device)
