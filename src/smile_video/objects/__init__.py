"""Object banks: RGBA sprites pasted onto clips by motion infusion (paper section 3.3)."""

from .bank import ObjectBank, build_bank, sprite_from_image
from .default import default_bank, default_bank_path, load_bank, procedural_shapes, render_openmoji, split_of

__all__ = ["ObjectBank", "build_bank", "sprite_from_image", "default_bank", "default_bank_path", "load_bank",
           "procedural_shapes", "render_openmoji", "split_of"]
