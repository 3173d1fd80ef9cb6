"""Where a run keeps its checkpoints: ``<run>/checkpoints/step_<step, 8 digits or more>/``.

One definition of the layout for the writer (`engine.checkpoints`), the loader (`checkpoint`) and the checker
(`manifest.verify_tree`), which differ only in which of these directories they accept (complete, with a model, any).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["CHECKPOINTS", "step_dir_name", "step_dirs"]

CHECKPOINTS = "checkpoints"  # under the run directory
_STEP_DIR = re.compile(r"^step_(\d{8,})$")


def step_dir_name(step: int) -> str:
    """The directory name of the checkpoint at `step` (zero-padded so names sort like steps up to 10^8)."""
    if step < 0:
        raise ValueError(f"a checkpoint step must be >= 0, got {step}")
    return f"step_{step:08d}"


def step_dirs(root: str | Path) -> list[tuple[int, Path]]:
    """Every ``step_*`` directory under `root` (a run's ``checkpoints/``), complete or not, with its step, ordered by
    step (oldest first); other names (``.tmp-*`` of a save in progress, stray files) are left out."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return sorted(found, key=lambda sp: sp[0])
