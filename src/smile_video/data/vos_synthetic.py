"""A small DAVIS-2017-layout dataset generated with the motion compositor, with exact masks.

Objects of the embedded bank's held-out split move over still-photo backgrounds (`motion.infuse_motion`). The
compositor returns every object's alpha per frame, before occlusion by the objects pasted after it; the mask of a
frame is 0 (background) where no object covers half a pixel, else the id k + 1 of the topmost object whose alpha is
>= 0.5. Frames are written as JPEG (quality 95), masks as palette PNGs with the DAVIS palette, and
``ImageSets/2017/val.txt`` lists the videos: `data.vos_layout.read_vos_dataset(root, "davis", "val")` reads it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["davis_palette", "object_masks", "write_davis_layout"]


def davis_palette() -> list[int]:
    """The 256-colour palette DAVIS / PASCAL VOC masks use (id 1 = dark red, 2 = dark green, ...), flat RGB."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def object_masks(alpha: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """alpha (B, K, T, H, W) float in [0, 1], object k pasted over objects < k -> (B, T, H, W) int64 ids: 0 where
    no alpha reaches `threshold`, else k + 1 of the last such object."""
    b, k, t, h, w = alpha.shape
    out = torch.zeros(b, t, h, w, dtype=torch.long)
    for j in range(k):  # later objects are on top
        out[alpha[:, j] >= threshold] = j + 1
    return out


def write_davis_layout(root: str | Path, num_videos: int = 3, num_frames: int = 8, height: int = 64,
                       width: int = 96, num_objects: int = 2, seed: int = 0) -> list[str]:
    """Write the dataset under `root`; returns the video names. Same arguments, same files (one seeded generator)."""
    from ..config import MotionConfig
    from ..motion import infuse_motion
    from ..motion.backgrounds import make_background
    from ..objects import default_bank

    if num_videos < 1 or num_frames < 2 or num_objects < 1 or min(height, width) < 16:
        raise ValueError("write_davis_layout: num_videos >= 1, num_frames >= 2, num_objects >= 1 and frames of at "
                         f"least 16 px needed, got {num_videos}, {num_frames}, {num_objects}, {height}x{width}")
    root = Path(root)
    g = torch.Generator().manual_seed(seed)
    bank = default_bank("heldout")
    cfg = MotionConfig(num_objects=num_objects, size_min=72.0, size_max=120.0, device="cpu")  # px at 224
    background = make_background("image", num_videos, num_frames, height, width, g).contiguous()
    video, alpha = infuse_motion(background, bank, cfg, g)  # (B, 3, T, H, W) uint8, ObjectAlpha
    masks = object_masks(alpha.dense())  # (B, T, H, W)
    palette = davis_palette()
    names = [f"synthetic{i:03d}" for i in range(num_videos)]
    for b, name in enumerate(names):
        frames_dir = root / "JPEGImages" / "480p" / name
        masks_dir = root / "Annotations" / "480p" / name
        frames_dir.mkdir(parents=True, exist_ok=True)
        masks_dir.mkdir(parents=True, exist_ok=True)
        for t in range(num_frames):
            Image.fromarray(video[b, :, t].permute(1, 2, 0).numpy()).save(frames_dir / f"{t:05d}.jpg", quality=95)
            m = Image.frombytes("P", (width, height), masks[b, t].numpy().astype(np.uint8).tobytes())
            m.putpalette(palette)
            m.save(masks_dir / f"{t:05d}.png")
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(names) + "\n")
    return names
