"""The object bank: RGBA sprites (cut-out objects) decoded once and kept in one cache file.

A bank holds N sprites of varying size, each cropped to its alpha bounding box with its longest side at most
``max_side``, and a category per sprite. Training never decodes images: `ObjectBank.load` reads one safetensors file
(a zlib-compressed flat pixel buffer plus shapes and offsets), and `ObjectBank.atlas` fits every sprite into a
fixed ``size x size`` cell (aspect kept, centred, transparent padding) so compositing can index sprites as a tensor.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..runlog import atomic_write_bytes

__all__ = ["ObjectBank", "build_bank", "sprite_from_image", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_MIN_SIDE = 2  # a sprite whose alpha bounding box is smaller than this is not a usable object


class ObjectBank:
    """N RGBA sprites with category labels.

    Attributes:
        categories: category names; ``labels[i]`` indexes into it.
        labels: (N,) long.
        names: (N,) identifiers of the sprites (source file or glyph code), for reports and splits.
        max_side: the cap on the longest side used when the bank was built.
    """

    def __init__(self, sprites: Sequence[torch.Tensor], labels: Sequence[int] | torch.Tensor,
                 categories: Sequence[str], names: Sequence[str] | None = None, max_side: int = 256) -> None:
        if len(sprites) == 0:
            raise ValueError("an object bank needs at least one sprite")
        for i, s in enumerate(sprites):
            if s.dtype != torch.uint8 or s.dim() != 3 or s.shape[0] != 4:
                raise ValueError(f"sprite {i}: expected (4, h, w) uint8 RGBA, got {tuple(s.shape)} {s.dtype}")
        self.sprites = [s.contiguous() for s in sprites]
        self.labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        self.categories = list(categories)
        self.names = list(names) if names is not None else [str(i) for i in range(len(sprites))]
        self.max_side = int(max_side)
        if len(self.labels) != len(self.sprites) or len(self.names) != len(self.sprites):
            raise ValueError(f"object bank: {len(self.sprites)} sprites but {len(self.labels)} labels and "
                             f"{len(self.names)} names")
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.categories)):
            raise ValueError(f"object bank: labels must index {len(self.categories)} categories")
        self._atlas_cache: dict[tuple[int, str], torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.sprites)

    @property
    def num_categories(self) -> int:
        """Categories that hold at least one object (a split such as `default_bank("pretrain")` keeps the whole
        category table so label ids stay comparable; this counts what the bank holds)."""
        return len(set(self.labels.tolist()))

    def __repr__(self) -> str:
        return f"ObjectBank({len(self)} sprites, {self.num_categories} categories, max_side={self.max_side})"

    # ---------------------------------------------------------------------------------------------------------
    def subset(self, indices: Sequence[int] | torch.Tensor) -> ObjectBank:
        """The sprites at `indices` (categories kept whole so label ids stay comparable)."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1).tolist()
        if not idx:
            raise ValueError("object bank subset: no indices")
        return ObjectBank([self.sprites[i] for i in idx], self.labels[idx], self.categories,
                          [self.names[i] for i in idx], self.max_side)

    def atlas(self, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Every sprite fitted into a ``size x size`` cell: (N, 4, size, size) uint8 RGBA on `device`, channels-last
        in memory.

        The sprite is resized (premultiplied-alpha antialiased resampling, aspect kept) so its longest side is
        `size`, and centred; the rest of the cell is transparent. Cached per (size, device).
        """
        device = torch.device(device)
        key = (int(size), str(device))
        if key not in self._atlas_cache:
            cells = np.zeros((len(self), size, size, 4), dtype=np.uint8)  # (N, size, size, RGBA)
            for i, sprite in enumerate(self.sprites):
                _, h, w = sprite.shape
                f = size / max(h, w)
                nh, nw = max(1, round(h * f)), max(1, round(w * f))
                im = Image.fromarray(sprite.permute(1, 2, 0).numpy(), "RGBA")
                if (nh, nw) != (h, w):
                    im = im.resize((nw, nh), Image.Resampling.LANCZOS)  # Pillow resamples RGBA premultiplied
                y0, x0 = (size - nh) // 2, (size - nw) // 2
                cells[i, y0:y0 + nh, x0:x0 + nw] = np.asarray(im)
            # channels-last in memory (a (N, 4, A, A) view of the RGBA cells): the fused compositing kernels read
            # one texel's 4 bytes together
            self._atlas_cache[key] = torch.from_numpy(cells).permute(0, 3, 1, 2).to(device)
        return self._atlas_cache[key]

    # ---------------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the bank to one safetensors file (atomically): compressed pixels, shapes, labels, names."""
        from safetensors.torch import save

        shapes = torch.tensor([list(s.shape[1:]) for s in self.sprites], dtype=torch.int64)  # (N, 2) (h, w)
        flat = torch.cat([s.reshape(-1) for s in self.sprites]).numpy()
        packed = np.frombuffer(zlib.compress(flat.tobytes(), 1), dtype=np.uint8)
        tensors = {"pixels_zlib": torch.from_numpy(packed.copy()), "shapes": shapes, "labels": self.labels.clone()}
        metadata = {
            "format": "smile-video object bank",
            "version": str(FORMAT_VERSION),
            "categories": json.dumps(self.categories),
            "names": json.dumps(self.names),
            "max_side": str(self.max_side),
            "num_pixels": str(flat.size),
        }
        atomic_write_bytes(path, save(tensors, metadata=metadata))

    @classmethod
    def load(cls, path: str | Path) -> ObjectBank:
        """Read a bank written by `save`. A missing, corrupt or foreign file raises with the path named."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"object bank {str(path)!r} does not exist (build one with `smile objects build`)")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != "smile-video object bank":
                    raise ValueError("not an object bank file (no 'smile-video object bank' header)")
                if meta.get("version") != str(FORMAT_VERSION):
                    raise ValueError(f"bank format version {meta.get('version')!r}, expected {FORMAT_VERSION}")
                packed = f.get_tensor("pixels_zlib")
                shapes = f.get_tensor("shapes")
                labels = f.get_tensor("labels")
            categories = json.loads(meta["categories"])
            names = json.loads(meta["names"])
            flat = np.frombuffer(zlib.decompress(packed.numpy().tobytes()), dtype=np.uint8)
            if flat.size != int(meta["num_pixels"]) or flat.size != int((shapes.prod(1) * 4).sum()):
                raise ValueError("pixel buffer size does not match the sprite shapes")
        except Exception as e:  # safetensors, zlib, json and our own checks all mean the same: unusable file
            raise ValueError(f"object bank {str(path)!r} is corrupt or not a bank file: {e}") from e
        pixels = torch.from_numpy(flat.copy())
        sizes = (shapes.prod(1) * 4).tolist()
        sprites = [p.view(4, int(h), int(w)) for p, (h, w) in zip(torch.split(pixels, sizes), shapes.tolist())]
        return cls(sprites, labels, categories, names, int(meta.get("max_side", 256)))


# -------------------------------------------------------------------------------------------------------------
def sprite_from_image(im: Image.Image, max_side: int = 256) -> torch.Tensor:
    """An RGBA PIL image -> (4, h, w) uint8 sprite cropped to its alpha bounding box, longest side <= max_side.

    Raises ValueError when the image has no usable alpha (fully opaque, fully transparent or tiny).
    """
    im = im.convert("RGBA")
    alpha = np.asarray(im.getchannel("A"))
    if alpha.min() == 255:
        raise ValueError("alpha is fully opaque (no cut-out)")
    bbox = im.getchannel("A").getbbox()
    if bbox is None:
        raise ValueError("alpha is fully transparent")
    im = im.crop(bbox)
    if min(im.size) < _MIN_SIDE:
        raise ValueError(f"object is too small ({im.size[0]}x{im.size[1]} px)")
    if max(im.size) > max_side:
        f = max_side / max(im.size)
        im = im.resize((max(1, round(im.size[0] * f)), max(1, round(im.size[1] * f))), Image.Resampling.LANCZOS)
    arr = np.asarray(im).copy()  # (h, w, 4)
    arr[arr[..., 3] == 0, :3] = 0  # canonical colour under full transparency (compresses, never shows)
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def build_bank(src: str | Path, max_side: int = 256) -> tuple[ObjectBank, list[tuple[str, str]]]:
    """Build a bank from a folder of images with alpha.

    Layouts: ``<src>/<category>/<any>.png`` (the paper's released object set: one folder per category) or a flat
    folder ``<src>/<name>.png`` (the category is the file stem). Every file is opened; corrupt files, non-images
    and images without usable alpha are skipped and returned as ``(file, reason)``. Hidden files are ignored.

    Returns:
        (bank, skipped). Raises ValueError if no usable sprite is found, FileNotFoundError if `src` is missing.
    """
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"object folder {str(src)!r} does not exist or is not a directory")
    files = sorted(p for p in src.rglob("*") if p.is_file() and not any(part.startswith(".")
                                                                         for part in p.relative_to(src).parts))
    sprites, cats, names, skipped = [], [], [], []
    for p in files:
        rel = p.relative_to(src)
        category = rel.parts[0] if len(rel.parts) > 1 else p.stem
        try:
            with Image.open(p) as im:
                im.load()
                if not _has_alpha(im):
                    raise ValueError(f"no alpha channel (mode {im.mode})")
                sprite = sprite_from_image(im, max_side)
        except UnidentifiedImageError:
            skipped.append((str(rel), "not an image"))
            continue
        except (OSError, ValueError, SyntaxError) as e:
            reason = str(e) if isinstance(e, ValueError) else f"cannot decode: {e}"
            skipped.append((str(rel), reason))
            continue
        sprites.append(sprite)
        cats.append(category)
        names.append(str(rel))
    if not sprites:
        raise ValueError(f"object folder {str(src)!r}: no usable RGBA image among {len(files)} files"
                         + (f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
    categories = sorted(set(cats))
    index = {c: i for i, c in enumerate(categories)}
    return ObjectBank(sprites, [index[c] for c in cats], categories, names, max_side), skipped
