"""smile-video: SMILE (CVPR 2025), masked video learning with spatial and motion semantics."""

__version__ = "0.1.0"
