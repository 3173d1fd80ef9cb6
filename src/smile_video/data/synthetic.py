"""Synthetic clip sources for learning without natural video (paper section 5, Table 7).

A source yields *backgrounds*; synthetic object motion is pasted later, batched on the training device. Item `i` of
epoch `e` is a pure function of (seed, e, i): any worker, rank or resumed run reads the same clip.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.utils.data import Dataset

from ..motion.backgrounds import image_files, load_still, make_background
from ..seeding import derive_seed

log = logging.getLogger(__name__)


class BackgroundClips(Dataset):
    """`length` clips of a background kind: noise | black | image (bundled photos, or the images of `image_dir`),
    or frame | video over a natural clip dataset.

    Items follow the video datasets' contract: {"video": uint8 (3, T, H, W), "label": -1, "index": i, "skipped": [...]}.
    """

    def __init__(self, kind: str, length: int, num_frames: int, size: int, seed: int = 0,
                 videos: Dataset | None = None, image_dir: str = "") -> None:
        if kind in ("frame", "video") and videos is None:
            raise ValueError(f"data.background={kind!r} needs natural clips: set data.train_list")
        self.kind, self.length, self.num_frames, self.size, self.seed = kind, length, num_frames, size, seed
        self.videos = videos
        # Still images from a folder (data.image_dir), listed once; None = the photographs scikit-image ships.
        self.images = image_files(image_dir) if kind == "image" and image_dir else None
        self.warned: set[str] = set()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.videos is not None and hasattr(self.videos, "set_epoch"):
            self.videos.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length if self.videos is None else len(self.videos)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Item `key` of the current epoch, or ``(epoch, index)`` (for persistent workers, as the video datasets)."""
        epoch, index = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (self.epoch, int(key))
        g = torch.Generator().manual_seed(derive_seed(self.seed, epoch, index))
        skipped: list[str] = []
        natural = None
        if self.videos is not None:
            item = self.videos[(epoch, index)]
            natural, skipped = item["video"], list(item.get("skipped", []))
            if natural.dim() == 5:  # several samples from one decode: keep the first
                natural = natural[0]
            natural = natural.unsqueeze(0)
        if self.images is not None:
            still, bad = load_still(self.images, self.size, self.size, g)  # (3, S, S) uint8
            for text in bad:  # in the training process (0 workers) this is the only report of a bad image
                if text not in self.warned:
                    self.warned.add(text)
                    log.warning("skipping image %s", text)
            skipped += bad
            clip = still.unsqueeze(1).expand(3, self.num_frames, self.size, self.size)
        else:
            clip = make_background(self.kind, 1, self.num_frames, self.size, self.size, g, video=natural)[0]
        return {"video": clip, "label": -1, "index": index, "skipped": skipped}
