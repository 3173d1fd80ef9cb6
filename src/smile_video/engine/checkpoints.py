"""Training checkpoints: one directory per step, written atomically, the last k kept, resumable exactly.

Layout of ``<run>/checkpoints/step_00001234/``:
    model.safetensors, config.json   the model in our portable format (`smile_video.checkpoint.save_model`)
    training_state.pt                optimizer, grad scaler, step, stage, epoch position (tensors and plain data only,
                                     loadable with ``weights_only=True``)
    manifest.json                    each file's size and sha256 (`smile_video.manifest`): a file damaged after the
                                     write is found, and `--resume auto` takes the newest intact checkpoint
A directory appears under its final name only once complete (written as ``.tmp-*`` then renamed), and leaves it
the same way (renamed to ``.tmp-old-*`` before it is deleted), so a reader never sees one half written or half
deleted. Saving step s discards the checkpoints after s: they belong to the run's abandoned future (a resume from an
earlier checkpoint), and `--resume auto` must not return to them.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import save_model
from ..checkpoint_layout import CHECKPOINTS, step_dir_name, step_dirs
from ..config import ModelConfig
from ..manifest import CorruptCheckpoint, check_intact, newest_intact, write_manifest
from ..runlog import atomic_write_bytes


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    return [p for _, p in step_dirs(Path(run_dir) / CHECKPOINTS) if (p / "training_state.pt").exists()]


def _discard(path: Path) -> None:
    """Delete a checkpoint directory without a reader ever seeing it half deleted: one atomic rename out of the
    ``step_*`` names, then the removal (whose leftovers, if it is interrupted, the next save clears; `save_checkpoint`
    clears them before it calls this, so the name aside is free)."""
    aside = path.with_name(f".tmp-old-{path.name}-{os.getpid()}")
    os.replace(path, aside)
    shutil.rmtree(aside, ignore_errors=True)


def save_checkpoint(run_dir: str | Path, step: int, model: nn.Module, model_cfg: ModelConfig, meta: dict[str, Any],
                    state: dict[str, Any], keep_last: int) -> Path:
    """Write a complete checkpoint directory atomically, discard the run's checkpoints after `step` (an abandoned
    future) and prune older ones beyond `keep_last` (0 keeps all). One process writes a run's checkpoints (the run
    directory's lock), so ``.tmp-*`` leftovers of an interrupted save are cleared here."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    for left in root.glob(".tmp-*"):
        shutil.rmtree(left, ignore_errors=True)
    final = root / step_dir_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        save_model(model, model_cfg, tmp, meta=meta)
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(tmp / "training_state.pt", buf.getvalue())
        write_manifest(tmp, ["training_state.pt"], extend=True)  # save_model listed the model's two files
        if final.exists():
            _discard(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for later in [p for s, p in step_dirs(root) if s > step]:
        _discard(later)
    if keep_last > 0:
        for old in checkpoint_dirs(run_dir)[:-keep_last]:
            _discard(old)
    return final


def load_training_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    file = path / "training_state.pt" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no training state at {str(file)!r}")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"training state {str(file)!r} is unreadable: {e}") from e


def find_resume(run_dir: str | Path, resume: str) -> Path | None:
    """`auto` -> the newest complete checkpoint of the run that is not damaged (its manifest.json; a damaged one is
    passed over with a warning; None when there is none); otherwise the given path, refused when damaged."""
    if not resume:
        return None
    if resume == "auto":
        dirs = checkpoint_dirs(run_dir)
        if not dirs:
            return None
        found = newest_intact(dirs, "run.resume=auto")
        if found is None:
            raise CorruptCheckpoint(f"run.resume=auto: every checkpoint of {run_dir} is damaged (manifest.json); "
                                    "start again with --overwrite")
        return found
    path = Path(resume)
    if not path.exists():
        raise FileNotFoundError(f"run.resume: {resume!r} does not exist")
    check_intact(path if path.is_dir() else path.parent)  # a training_state.pt path: its checkpoint's manifest
    return path
