"""One run directory holds one run: who may write into it, and what a resume may change.

- A new run needs a missing or empty ``run.out_dir``; a folder that already holds files is refused, and the message
  says how to continue it (``--resume auto``), replace it (``--overwrite``) or pick another folder.
- ``run.overwrite=true`` (``--overwrite``) replaces the run: the folder's contents are removed first, except the caches
  the job names in ``keep`` (e.g. the probe's feature cache, checked against the encoder on use). Only a folder that
  a smile job wrote (it holds one of ``markers``) is ever deleted.
- ``run.resume`` continues the run in the folder. When there is a checkpoint, the saved ``config.yaml`` is compared
  with the new config (`resume_changes`): a change that alters what the resumed run computes is refused, naming each
  key, unless ``run.force_resume=true`` (``--force-resume``); a change to a key in the job's ``safe`` list (logging,
  checkpoint cadence, workers) is allowed and logged. When there is nothing to resume yet, the previous attempt's
  files are removed and the run starts fresh.
"""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, to_dict

__all__ = ["RunDirError", "claim_run_dir", "saved_config", "resume_changes", "format_changes"]

Change = tuple[str, Any, Any]  # (key, saved value, new value)


class RunDirError(ValueError):
    """The run directory cannot be used as asked; the message names the folder and the ways out."""


def _contents(path: Path, keep: tuple[str, ...]) -> list[str]:
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir() if p.name not in keep)


def claim_run_dir(path: str | Path, *, resume: bool, overwrite: bool, resumable: bool = False,
                  is_main: bool = True, keep: tuple[str, ...] = (), markers: tuple[str, ...] = ("config.yaml",),
                  resume_hint: str | None = "--resume auto (run.resume=auto)",
                  overwrite_hint: str = "--overwrite (run.overwrite=true)") -> bool:
    """Check, before any work, that a run may write into `path`; with `overwrite` (or a resume with nothing to resume
    yet) empty it first on the main process. Returns True when an earlier run's files were removed.

    `resume`: the job continues a run; `resumable`: it found a checkpoint to continue from. `resume_hint` is how
    the user continues this job's runs (None: the job has no resume). Other ranks (`is_main` False) return at once:
    the main one stops the job when the folder is refused."""
    path = Path(path)
    if not is_main:  # only the main process looks and deletes: other ranks would race with its writes
        return False
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} exists and is not a directory; choose another --out")
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other (run.resume, run.overwrite): continue the run "
                          f"in {path}, or replace it, not both")
    found = _contents(path, keep)
    if not found or (resume and resumable):
        return False
    if not (overwrite or resume):
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        ways = [f"continue it with {resume_hint}"] if resume_hint else []
        ways += [f"replace it with {overwrite_hint}", "or choose another --out"]
        raise RunDirError(f"{path} already holds a run ({shown}); a run directory holds one run: " + ", ".join(ways))
    if not any((path / m).exists() for m in markers):
        raise RunDirError(f"{path} is not empty and is not a smile run directory (no {' / '.join(markers)}): "
                          "it will not be deleted; choose another --out")
    if is_main:
        for name in found:
            p = path / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    return True


def saved_config(out_dir: str | Path, checkpoint: Path) -> Path:
    """The config a resume is compared with: the run directory's, or (resuming another run's checkpoint
    ``<run>/checkpoints/step_N`` into a new folder) that run's."""
    own = Path(out_dir) / "config.yaml"
    if own.is_file():
        return own
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    return folder.parent.parent / "config.yaml"


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def resume_changes(saved_config: str | Path, cfg: Any, safe: tuple[str, ...], force: bool) -> list[Change]:
    """Compare a run's saved config.yaml with the config it is resumed with; returns every changed key as
    (key, saved, new). Raises ConfigError when a key outside `safe` (fnmatch patterns such as ``run.*``) changed
    and `force` is False. A key the saved file lacks (written by an older version) counts as its default."""
    path = Path(saved_config)
    if not path.is_file():
        return []
    saved = _flatten(yaml.safe_load(path.read_text()) or {})
    new = _flatten(yaml.safe_load(yaml.safe_dump(to_dict(cfg))))  # the same YAML normalisation as the saved file
    default = _flatten(yaml.safe_load(yaml.safe_dump(to_dict(type(cfg)()))))
    changes = [(k, saved.get(k, default.get(k)), v) for k, v in new.items() if saved.get(k, default.get(k)) != v]
    unsafe = [c for c in changes if not any(fnmatch.fnmatchcase(c[0], p) for p in safe)]
    if unsafe and not force:
        raise ConfigError(
            f"run.resume: the config differs from the run's saved {path} in {format_changes(unsafe)}; resuming would "
            "not continue the same run (model, data, plan and seed must match). Resume with the saved config "
            f"(-c {path}), start a new run (another --out, or --overwrite), or accept the change with --force-resume "
            "(run.force_resume=true)")
    return changes


def format_changes(changes: list[Change]) -> str:
    return ", ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes)
