"""Where smile-video keeps what it builds once and reuses (the rendered default bank, compiled kernels)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$SMILE_VIDEO_CACHE``, else ``$XDG_CACHE_HOME/smile-video``, else ``~/.cache/smile-video`` (not created)."""
    if os.environ.get("SMILE_VIDEO_CACHE"):
        return Path(os.environ["SMILE_VIDEO_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "smile-video"
