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
- While a job writes into a run directory it holds an exclusive lock on ``.smile.lock`` there (POSIX ``flock``,
  released by the OS when the process ends, so a crash leaves no stale lock): a second process that claims the same
  folder, even with ``--resume`` or ``--overwrite``, is refused with the holder's pid instead of writing over it.
  Best effort: where the file system has no locks (or there is no ``fcntl``: Windows) the folder is used unlocked.
  DataLoader workers forked while the lock is held share it, so it ends with the last of them.
"""

from __future__ import annotations

import errno
import fnmatch
import functools
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .config import ConfigError, to_dict

__all__ = ["RunDirError", "LOCK_NAME", "claim_run_dir", "lock_run_dir", "lock_for_resume", "release_run_dir",
           "holding_run_dir",
           "releases_run_dir", "saved_config", "resume_changes", "format_changes"]

Change = tuple[str, Any, Any]  # (key, saved value, new value)


class RunDirError(ValueError):
    """The run directory cannot be used as asked; the message names the folder and the ways out."""


LOCK_NAME = ".smile.lock"  # in the run directory; never counted as a run's file, never deleted
_HELD: dict[str, int] = {}  # resolved run directory -> the open lock file's descriptor, in this process


def _key(path: str | Path) -> str:
    """A run directory's `_HELD` key: one entry whatever relative path or link names it."""
    return str(Path(path).resolve())


def lock_run_dir(path: str | Path) -> bool:
    """Take the exclusive lock of run directory `path` (created if missing) for this process; True if it holds it
    now (also when it held it already), False where locks are unavailable. Raises RunDirError, naming the holder's
    pid, when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the folder is used unlocked
        return False
    path = Path(path)
    key = _key(path)
    if key in _HELD:
        return True
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunDirError(f"{path} is in use by another smile process (pid {holder or 'unknown'}, still running): "
                              "two runs writing one directory would mix their files; wait for it to end, stop it, "
                              "or choose another --out") from None
        warnings.warn(f"{path}: the file system refused a lock ({e}); the run directory is used unlocked", stacklevel=2)
        return False
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = fd
    return True


def lock_for_resume(path: str | Path, resume: str | bool, is_main: bool = True) -> bool:
    """Before a resume reads (hashes) the checkpoints of run directory `path`: take its lock, so no other process
    prunes them meanwhile. Only the main process, only when a resume is asked for and the folder exists (a resume
    of a missing folder fails when it looks for a checkpoint, without creating one); True if the lock is held."""
    if is_main and resume and Path(path).is_dir():
        return lock_run_dir(path)
    return False


def release_run_dir(path: str | Path) -> None:
    """Release this process's lock of `path` (nothing if it holds none); the lock file stays."""
    fd = _HELD.pop(_key(path), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


@contextmanager
def holding_run_dir(path: str | Path, lock: bool = True) -> Iterator[None]:
    """Release `path`'s lock when the block ends: around a job's whole life, so a second process is refused until
    it ends. `lock`: take it at the start too (False: the job's `claim_run_dir` takes it, on the main process only).
    A lock this process held before the block stays held."""
    held_before = _key(path) in _HELD
    if lock:
        lock_run_dir(path)
    try:
        yield
    finally:
        if not held_before:
            release_run_dir(path)


J = TypeVar("J", bound=Callable[..., Any])


def releases_run_dir(job: J) -> J:
    """Decorate a job ``job(cfg, ...)`` whose `claim_run_dir` locks ``cfg.run.out_dir``: the lock is released when
    the job returns or raises."""
    @functools.wraps(job)
    def wrapper(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        with holding_run_dir(cfg.run.out_dir, lock=False):
            return job(cfg, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


def _contents(path: Path, keep: tuple[str, ...]) -> list[str]:
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir() if p.name not in keep and p.name != LOCK_NAME)


def claim_run_dir(path: str | Path, *, resume: bool, overwrite: bool, resumable: bool = False,
                  is_main: bool = True, keep: tuple[str, ...] = (), markers: tuple[str, ...] = ("config.yaml",),
                  resume_hint: str | None = "--resume auto (run.resume=auto)",
                  overwrite_hint: str = "--overwrite (run.overwrite=true)") -> bool:
    """Check, before any work, that a run may write into `path`; with `overwrite` (or a resume with nothing to resume
    yet) empty it first on the main process. Returns True when an earlier run's files were removed.

    `resume`: the job continues a run; `resumable`: it found a checkpoint to continue from. `resume_hint` is how
    the user continues this job's runs (None: the job has no resume). Other ranks (`is_main` False) return at once:
    the main one stops the job when the folder is refused. The main process takes the folder's lock
    (`lock_run_dir`) before it looks: a folder another process writes into is refused whatever the flags; the job
    releases it when it ends (`holding_run_dir` around the job, or `release_run_dir`)."""
    path = Path(path)
    if not is_main:  # only the main process looks and deletes: other ranks would race with its writes
        return False
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} exists and is not a directory; choose another --out")
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other (run.resume, run.overwrite): continue the run "
                          f"in {path}, or replace it, not both")
    held_before = _key(path) in _HELD
    lock_run_dir(path)
    try:
        found = _contents(path, keep)
        if not found or (resume and resumable):
            return False
        if not (overwrite or resume):
            shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
            ways = [f"continue it with {resume_hint}"] if resume_hint else []
            ways += [f"replace it with {overwrite_hint}", "or choose another --out"]
            raise RunDirError(f"{path} already holds a run ({shown}); a run directory holds one run: "
                              + ", ".join(ways))
        if not any((path / m).exists() for m in markers):
            raise RunDirError(f"{path} is not empty and is not a smile run directory (no {' / '.join(markers)}): "
                              "it will not be deleted; choose another --out")
        for name in found:
            p = path / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        return True
    except RunDirError:  # refused: a lock taken for this claim is given back
        if not held_before:
            release_run_dir(path)
        raise


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
