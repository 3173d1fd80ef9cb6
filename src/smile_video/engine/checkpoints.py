"""Training checkpoints: one directory per step, written atomically, the last k kept, resumable exactly.

Layout of ``<run>/checkpoints/step_00001234/``:
    model.safetensors, config.json   the model in our portable format (`smile_video.checkpoint.save_model`)
    training_state.pt                optimizer, grad scaler, step, stage, epoch position (tensors and plain data only,
                                     loadable with ``weights_only=True``)
    manifest.json                    each file's size and sha256 (`smile_video.manifest`): a file damaged after the
                                     write is found, and `--resume auto` takes the newest intact checkpoint
A directory appears under its final name only once complete (written as ``.tmp-*`` then renamed).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import save_model
from ..config import ModelConfig
from ..manifest import CorruptCheckpoint, check_intact, newest_intact, write_manifest
from ..runlog import atomic_write_bytes

STEP_DIR = re.compile(r"^step_(\d{8})$")


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name) and (p / "training_state.pt").exists()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def save_checkpoint(run_dir: str | Path, step: int, model: nn.Module, model_cfg: ModelConfig, meta: dict[str, Any],
                    state: dict[str, Any], keep_last: int) -> Path:
    """Write a complete checkpoint directory atomically and prune older ones beyond `keep_last` (0 keeps all)."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        save_model(model, model_cfg, tmp, meta=meta)
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(tmp / "training_state.pt", buf.getvalue())
        write_manifest(tmp, ["training_state.pt"], extend=True)  # save_model listed the model's two files
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep_last > 0:
        for old in checkpoint_dirs(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
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
    if path.is_dir():
        check_intact(path)
    return path
