"""Checksums of a written directory (a checkpoint, a final model): ``manifest.json``, written last.

A checkpoint directory is renamed into place only once complete (engine/checkpoints.py), but a file can still be
damaged afterwards: a disk or copy error, a truncated rsync, a file replaced by hand. ``manifest.json`` records each
file's size and sha256 when the directory is written; `manifest_problems` re-reads them:

- ``None``: no manifest (a directory written before manifests existed, or by another tool): nothing to check;
- ``[]``: every listed file is there with its recorded size and sha256;
- otherwise one line per damaged file ("model.safetensors: sha256 differs from manifest.json", "... is missing").

Users: `--resume auto` and a run directory given as a checkpoint take the newest checkpoint that is intact (and say
which damaged ones they passed over); loading a damaged model directory is refused, naming the file.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from pathlib import Path

from .checkpoint_layout import CHECKPOINTS, step_dirs
from .runlog import atomic_write_text

__all__ = ["MANIFEST", "write_manifest", "manifest_problems", "check_intact", "newest_intact",
           "verify_tree", "CorruptCheckpoint"]

MANIFEST = "manifest.json"
FORMAT = "smile-video-manifest"


class CorruptCheckpoint(ValueError):
    """A directory's files differ from its manifest.json; the message names the directory and each file."""


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _listed(folder: Path) -> dict[str, dict]:
    """The files `folder`'s manifest lists ({name: {"bytes", "sha256"}}); ValueError when it does not parse."""
    try:
        doc = json.loads((folder / MANIFEST).read_text())
        files = doc["files"]
        if doc.get("format") != FORMAT or not isinstance(files, dict):
            raise ValueError("not a smile-video manifest")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(str(e)) from e
    return files


def write_manifest(folder: str | Path, names: Iterable[str], extend: bool = False) -> None:
    """Record the size and sha256 of `folder`'s files `names` in ``folder/manifest.json`` (atomically): call it
    after the files are written, as the directory's last write. `extend`: keep what the folder's manifest lists
    already (a file added beside a saved model is hashed alone)."""
    folder = Path(folder)
    files = _listed(folder) if extend else {}
    files.update({name: {"bytes": (folder / name).stat().st_size, "sha256": _sha256(folder / name)}
                  for name in names})
    atomic_write_text(folder / MANIFEST, json.dumps({"format": FORMAT, "version": 1, "files": dict(sorted(
        files.items()))}, indent=1) + "\n")


def manifest_problems(folder: str | Path) -> list[str] | None:
    """None when `folder` has no manifest; else the damaged files ([] = intact). A manifest that does not parse is
    itself a problem."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        return None
    try:
        files = _listed(folder)
    except (OSError, ValueError) as e:
        return [f"{MANIFEST} is unreadable ({e})"]
    problems = []
    for name, want in files.items():
        p = folder / name
        if not isinstance(want, dict):
            problems.append(f"{MANIFEST} lists {name} without its size and sha256")
            continue
        try:
            if not p.is_file():
                problems.append(f"{name} is missing")
            elif (size := p.stat().st_size) != want.get("bytes"):
                problems.append(f"{name} has {size} bytes, manifest.json says {want.get('bytes')}")
            elif _sha256(p) != want.get("sha256"):
                problems.append(f"{name}: sha256 differs from manifest.json (damaged or changed after it was written)")
        except OSError as e:  # unreadable, or removed while it was read
            problems.append(f"{name} is unreadable ({e.strerror or e})")
    return problems


def check_intact(folder: str | Path) -> None:
    """Raise CorruptCheckpoint when `folder`'s manifest lists damaged files (nothing without a manifest)."""
    problems = manifest_problems(folder)
    if problems:
        raise CorruptCheckpoint(f"{folder} is damaged: {'; '.join(problems)}. Use an earlier checkpoint "
                                "(checkpoints/step_*) or write it again")


def newest_intact(dirs: list[Path], what: str) -> Path | None:
    """The last of `dirs` (oldest first) that is not damaged (no manifest counts as intact); each damaged one
    passed over is named in a warning. None when every one is damaged."""
    for d in reversed(dirs):
        problems = manifest_problems(d)
        if not problems:
            return d
        warnings.warn(f"{what}: passing over {d}, it is damaged: {'; '.join(problems)}", stacklevel=3)
    return None


def verify_tree(path: str | Path) -> list[tuple[Path, list[str] | None]]:
    """`manifest_problems` of a checkpoint directory, or of every checkpoint of a run directory
    (``checkpoints/step_*``, oldest first, then ``model/``): [(directory, problems)]."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory (a checkpoint or run directory)")
    if (path / "config.json").is_file() or (path / MANIFEST).is_file():
        dirs = [path]
    else:
        dirs = [d for _, d in step_dirs(path / CHECKPOINTS)]
        dirs += [path / "model"] if (path / "model").is_dir() else []
    if not dirs:
        raise ValueError(f"{path}: neither a checkpoint directory (config.json) nor a run directory "
                         "(checkpoints/step_*, model/)")
    return [(d, manifest_problems(d)) for d in dirs]
