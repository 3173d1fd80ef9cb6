"""Backgrounds for learning without natural video (paper Table 7): the clip onto which objects are pasted.

- ``noise``: one uniform-noise image repeated over the T frames (the paper duplicates one noise image).
- ``black``: zeros.
- ``deadleaves``: one procedural image repeated: the dead-leaves model (discs of power-law radii and random colours
  occluding each other), whose edges, flat regions and scale-free sizes have natural images' statistics without
  being any image (Lee, Mumford & Huang 2001; a pretraining source in Baradad et al., "Learning to see by looking at
  noise", 2021). Not in the paper: an option for learning without natural video whose backgrounds vary endlessly.
- ``image``: a still photo repeated: from a folder of images (`image_files`, e.g. the paper's Places-80K), or by
  default the photographs scikit-image ships (a random crop each).
- ``frame``: one random frame of a natural clip repeated (needs `video`).
- ``video``: the natural clip itself (needs `video`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["BACKGROUNDS", "PHOTO_FILES", "IMAGE_SUFFIXES", "still_photos", "image_files", "load_still",
           "dead_leaves", "make_background"]

BACKGROUNDS = ("noise", "black", "deadleaves", "image", "frame", "video")
# Photographs shipped inside the scikit-image wheel (never the ones its data module downloads).
PHOTO_FILES = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
               "gravel.png", "hubble_deep_field.jpg", "moon.png", "motorcycle_left.png", "rocket.jpg")


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def _photo_dir() -> Path:
    import skimage

    return Path(skimage.__file__).resolve().parent / "data"


def _short_side(im: Image.Image, side: int) -> Image.Image:
    """`im` resized (bicubic) so that its short side is `side`, aspect kept (each side at least `side`)."""
    f = side / min(im.size)
    return im.resize((max(side, round(im.size[0] * f)), max(side, round(im.size[1] * f))), Image.Resampling.BICUBIC)


@functools.lru_cache(maxsize=8)
def _photos(size: int | None) -> tuple[torch.Tensor, ...]:
    photos = []
    for name in PHOTO_FILES:
        path = _photo_dir() / name
        if not path.is_file():
            continue
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None:  # short side to `size`, centre crop to a square
                im = _short_side(im, size)
                left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
                im = im.crop((left, top, left + size, top + size))
            photos.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous())
    if not photos:
        raise FileNotFoundError(f"no still photos found in {str(_photo_dir())!r} (is scikit-image installed?)")
    return tuple(photos)


def still_photos(size: int | None = None) -> list[torch.Tensor]:
    """The photographs scikit-image ships, as (3, H, W) uint8 RGB (grey ones replicated).

    size: None keeps each photo's own size; an int resizes the short side to `size` and centre-crops a square.
    """
    return list(_photos(size))


def image_files(folder: str | Path) -> list[Path]:
    """Every image under `folder` (recursive; suffixes in IMAGE_SUFFIXES), sorted: the still backgrounds of
    ``data.image_dir``. Raises FileNotFoundError naming the folder when it is missing or holds no image."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.image_dir: {str(root)!r} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"data.image_dir: no images ({', '.join(IMAGE_SUFFIXES)}) under {str(root)!r}")
    return files


@functools.lru_cache(maxsize=512)
def _resized(path: Path, side: int) -> torch.Tensor:
    """(3, H, W) uint8 RGB with the short side resized to `side` (aspect kept)."""
    with Image.open(path) as im:
        im = _short_side(im.convert("RGB"), side)
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()


def load_still(files: list[Path], height: int, width: int,
               generator: torch.Generator) -> tuple[torch.Tensor, list[str]]:
    """One still background from `files`: a random file, its short side resized to max(height, width), a random
    (height, width) crop. A file that cannot be read is skipped (the next one is tried, in order) and named in the
    returned list, so one corrupt image never stops a run.

    Returns:
        ((3, height, width) uint8, [skipped paths])
    """
    g = generator
    start = int(torch.randint(0, len(files), (1,), generator=g))
    u = torch.rand(2, generator=g).tolist()  # crop position, drawn before any skip so a skip changes nothing else
    skipped: list[str] = []
    for k in range(len(files)):
        path = files[(start + k) % len(files)]
        try:
            img = _resized(path, max(height, width))
        except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for truncated / corrupt / unknown files
            skipped.append(f"{path}: {e}")
            continue
        y = int(u[0] * (img.shape[1] - height + 1))
        x = int(u[1] * (img.shape[2] - width + 1))
        return img[:, y:y + height, x:x + width], skipped
    raise FileNotFoundError(f"data.image_dir: none of the {len(files)} images could be read (first: {skipped[0]})")


_DEAD_LEAVES_BLOCK = 2**18  # mask elements per block of rows (dead_leaves on the CPU)


def dead_leaves(batch: int, height: int, width: int, generator: torch.Generator, discs: int = 384,
                r_min: float = 0.03, r_max: float = 0.4, alpha: float = 2.0) -> torch.Tensor:
    """Dead-leaves images: `discs` discs painted in order (later ones on top) over a random base colour; centres
    uniform (over the image and a margin of r_max), radii drawn from p(r) ~ r^-alpha on [r_min, r_max] x the longer
    side, colours uniform in RGB.

    Returns:
        (B, 3, H, W) uint8 on the generator's device.
    """
    if discs < 1 or not 0 < r_min <= r_max or alpha == 1:
        raise ValueError(f"dead_leaves: need discs >= 1, 0 < r_min <= r_max, alpha != 1; got {discs}, {r_min}, "
                         f"{r_max}, {alpha}")
    g, device = generator, generator.device
    side = max(height, width)
    u = torch.rand(batch, discs, generator=g, device=device)
    a, b = r_min ** (1 - alpha), r_max ** (1 - alpha)  # inverse CDF of the truncated power law
    radius = (a + u * (b - a)) ** (1 / (1 - alpha)) * side  # (B, K) pixels
    margin = r_max * side
    cy = torch.rand(batch, discs, generator=g, device=device) * (height + 2 * margin) - margin  # (B, K)
    cx = torch.rand(batch, discs, generator=g, device=device) * (width + 2 * margin) - margin
    colours = torch.randint(0, 256, (batch, discs + 1, 3), generator=g, device=device, dtype=torch.uint8)
    ys = torch.arange(height, device=device, dtype=torch.float32).view(1, height, 1) + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, width) + 0.5
    dy2 = (ys - cy.view(batch, discs, 1, 1)) ** 2  # (B, K, H, 1)
    dx2 = (xs - cx.view(batch, discs, 1, 1)) ** 2  # (B, K, 1, W)
    r2 = radius.view(batch, discs, 1, 1) ** 2
    order = torch.arange(1, discs + 1, device=device, dtype=torch.int16 if discs < 2**15 else torch.int32)
    order, none = order.view(discs, 1, 1), torch.zeros((), dtype=order.dtype, device=device)
    # On the CPU, blocks of rows whose (K, rows, W) masks stay in cache (benchmarks/backgrounds.py: with the int16
    # order, 3-7x faster than one int64 (K, H, W) product per image at 64 px, 10x at 224 px; the same images)
    rows = max(1, _DEAD_LEAVES_BLOCK // (discs * width)) if device.type == "cpu" else height
    out = torch.empty(batch, 3, height, width, dtype=torch.uint8, device=device)
    top = torch.empty(height, width, dtype=order.dtype, device=device)
    for i in range(batch):
        for y in range(0, height, rows):
            inside = dy2[i, :, y:y + rows] + dx2[i] <= r2[i]  # (K, rows, W)
            top[y:y + rows] = torch.where(inside, order, none).amax(0)  # the last disc covering a pixel, 0 = none
        out[i] = colours[i][top.long()].permute(2, 0, 1)
    return out


def _to_uint8(video: torch.Tensor) -> torch.Tensor:
    if video.dtype == torch.uint8:
        return video
    return (video.float() * 255).round_().clamp_(0, 255).to(torch.uint8)


def make_background(kind: str, batch: int, num_frames: int, height: int, width: int, generator: torch.Generator,
                    video: torch.Tensor | None = None) -> torch.Tensor:
    """Background clips: (B, 3, T, H, W) uint8 on the generator's device (the video's device for frame/video).

    video: (B, 3, T, H, W) natural clips (uint8 or float [0, 1]), needed for ``frame`` and ``video``.
    ``image`` draws from the photographs scikit-image ships; a folder of images (data.image_dir) is read per clip by
    `BackgroundClips` with `load_still`.
    Static kinds repeat one image over T as an expanded view; call ``.contiguous()`` before writing in place.
    """
    if kind not in BACKGROUNDS:
        raise ValueError(f"unknown background {kind!r}; choose one of {BACKGROUNDS}")
    g, device = generator, generator.device
    shape = (batch, 3, num_frames, height, width)
    if kind == "black":
        return torch.zeros(1, 1, 1, 1, 1, dtype=torch.uint8, device=device).expand(shape)
    if kind == "deadleaves":
        return dead_leaves(batch, height, width, g).unsqueeze(2).expand(shape)
    if kind == "noise":
        img = torch.randint(0, 256, (batch, 3, 1, height, width), generator=g, device=device, dtype=torch.uint8)
        return img.expand(shape)
    if kind == "image":
        photos = still_photos(max(height, width))
        pick = torch.randint(0, len(photos), (batch,), generator=g, device=device).tolist()
        side = max(height, width)
        ys = torch.randint(0, side - height + 1, (batch,), generator=g, device=device).tolist()
        xs = torch.randint(0, side - width + 1, (batch,), generator=g, device=device).tolist()
        imgs = torch.stack([photos[p][:, y:y + height, x:x + width] for p, y, x in zip(pick, ys, xs)])
        return imgs.to(device).unsqueeze(2).expand(shape)  # (B, 3, T, H, W)
    if video is None:
        raise ValueError(f"background {kind!r} needs natural clips (video=...)")
    if video.dim() != 5 or tuple(video.shape[:2]) != (batch, 3) or video.shape[2] < 1:
        raise ValueError(f"background {kind!r}: video must be ({batch}, 3, T, H, W), got {tuple(video.shape)}")
    clip = _to_uint8(video)
    if tuple(clip.shape[-2:]) != (height, width):
        b, c, t = clip.shape[:3]
        clip = F.interpolate(clip.float().flatten(1, 2), size=(height, width), mode="bilinear", antialias=True,
                             align_corners=False).round_().clamp_(0, 255).to(torch.uint8).view(b, c, t, height, width)
    if kind == "frame":
        idx = torch.randint(0, clip.shape[2], (batch,), generator=g, device=device).to(clip.device)
        frames = clip[torch.arange(batch, device=clip.device), :, idx]  # (B, 3, H, W)
        return frames.unsqueeze(2).expand(shape)
    if clip.shape[2] != num_frames:
        raise ValueError(f"background 'video': the clips have {clip.shape[2]} frames, expected {num_frames}")
    return clip
