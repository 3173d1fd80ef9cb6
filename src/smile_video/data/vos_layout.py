"""Video object segmentation datasets on disk: the DAVIS-2017 and YouTube-VOS folder layouts.

DAVIS-2017 (``layout=davis``)::

    ROOT/JPEGImages/480p/<video>/00000.jpg ...
    ROOT/Annotations/480p/<video>/00000.png ...     palette PNGs: pixel value = object id (0 = background)
    ROOT/ImageSets/2017/<split>.txt                  one video name a line (split: train / val)

YouTube-VOS 2018 / 2019 (``layout=ytvos``)::

    ROOT/<split>/JPEGImages/<video>/00000.jpg ...
    ROOT/<split>/Annotations/<video>/00000.png ...   palette PNGs; train annotates every 5th frame

A frame is scored where a mask of the same file stem exists; every frame feeds the features. Mask value 255 (void)
is not scored (`eval.vos.IGNORE`). A video without frames or without any mask is an error that names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .lists import IMAGE_EXTENSIONS

__all__ = ["LAYOUTS", "VosVideo", "read_vos_dataset", "load_frames", "load_masks"]

LAYOUTS = ("davis", "ytvos")
VOID = 255


@dataclass
class VosVideo:
    """One video: its frames in order and the masks that exist, by frame index."""

    name: str
    frames: list[Path]
    masks: dict[int, Path] = field(default_factory=dict)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) if folder.is_dir() else []


def _video(name: str, frame_dir: Path, mask_dir: Path) -> VosVideo:
    frames = _images(frame_dir)
    if not frames:
        raise ValueError(f"video {name!r}: no frames in {frame_dir}")
    masks = {p.stem: p for p in mask_dir.glob("*.png")} if mask_dir.is_dir() else {}
    by_index = {i: masks[f.stem] for i, f in enumerate(frames) if f.stem in masks}
    if not by_index:
        raise ValueError(f"video {name!r} has no masks: no PNG in {mask_dir} matches its frames' names "
                         f"(e.g. {frames[0].stem}.png)")
    return VosVideo(name, frames, by_index)


def read_vos_dataset(root: str | Path, layout: str = "davis", split: str = "val",
                     resolution: str = "480p") -> list[VosVideo]:
    """The videos of a split, in the order of its list (DAVIS) or by name (YouTube-VOS)."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise ValueError(f"vos.layout must be one of {LAYOUTS}, got {layout!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"VOS dataset root {str(root)!r} does not exist")
    if layout == "davis":
        image_set = root / "ImageSets" / "2017" / f"{split}.txt"
        if not image_set.is_file():
            raise FileNotFoundError(f"{image_set} does not exist (DAVIS-2017 layout: ImageSets/2017/<split>.txt)")
        names = [ln.strip() for ln in image_set.read_text().splitlines() if ln.strip()]
        frames, masks = root / "JPEGImages" / resolution, root / "Annotations" / resolution
    else:
        frames, masks = root / split / "JPEGImages", root / split / "Annotations"
        if not frames.is_dir():
            raise FileNotFoundError(f"{frames} does not exist (YouTube-VOS layout: <split>/JPEGImages/<video>/)")
        names = sorted(p.name for p in frames.iterdir() if p.is_dir())
    if not names:
        raise ValueError(f"{root}: the {split} split lists no video")
    return [_video(n, frames / n, masks / n) for n in names]


def load_frames(paths: list[Path], size: int) -> torch.Tensor:
    """Frames resized to size x size (bilinear, antialiased) -> (L, 3, size, size) uint8."""
    out = []
    for p in paths:
        img = torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)  # (3, H, W)
        out.append(F.interpolate(img[None].float(), size=(size, size), mode="bilinear", antialias=True,
                                 align_corners=False)[0].round().clamp(0, 255).to(torch.uint8))
    return torch.stack(out)


def load_masks(paths: list[Path], size: int) -> torch.Tensor:
    """Palette masks resized to size x size (nearest) -> (M, size, size) int64 object ids; void (255) -> -1."""
    out = []
    for p in paths:
        img = Image.open(p)
        if img.mode not in ("P", "L", "I", "1"):
            raise ValueError(f"{p}: expected a palette (or grey) PNG of object ids, got mode {img.mode}")
        m = torch.from_numpy(np.asarray(img).astype(np.int64))  # (H, W)
        m = F.interpolate(m[None, None].float(), size=(size, size), mode="nearest")[0, 0].long()
        m[m == VOID] = -1
        out.append(m)
    return torch.stack(out)
