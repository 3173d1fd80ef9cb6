"""Conventions every job shares: one run directory, the resolved config beside the outputs, a JSON-lines
metrics file, progress bars with ETA that `--quiet` silences, and atomic file writes."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from .config import save_config

T = TypeVar("T")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


class RunDir:
    """One directory per run: ``config.yaml``, ``metrics.jsonl``, and whatever the job writes.

    Only the main process (rank 0) writes; other ranks get a RunDir whose writes are no-ops.
    """

    def __init__(self, path: str | Path, quiet: bool = False, is_main: bool = True) -> None:
        self.path = Path(path)
        self.quiet = quiet
        self.is_main = is_main
        if is_main:
            self.path.mkdir(parents=True, exist_ok=True)
        self._start = time.time()

    def file(self, name: str) -> Path:
        return self.path / name

    def save_config(self, cfg: Any) -> None:
        if self.is_main:
            save_config(cfg, self.file("config.yaml"))

    def log(self, record: dict[str, Any], name: str = "metrics.jsonl") -> None:
        """Append one JSON record (non-finite floats become null) with the wall time since start."""
        if not self.is_main:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        clean.setdefault("time", round(time.time() - self._start, 3))
        with open(self.file(name), "a") as f:
            f.write(json.dumps(clean) + "\n")

    def echo(self, message: str) -> None:
        """Print a line unless quiet (uses tqdm.write so progress bars stay intact)."""
        if self.is_main and not self.quiet:
            tqdm.write(message, file=sys.stderr)

    def progress(self, iterable: Iterable[T] | None = None, total: int | None = None, desc: str = "",
                 initial: int = 0) -> tqdm:
        """A progress bar with ETA; silent when quiet or on non-main ranks."""
        return tqdm(iterable, total=total, desc=desc, initial=initial, disable=self.quiet or not self.is_main,
                    dynamic_ncols=True, file=sys.stderr, leave=False)


def read_metrics(path: str | Path) -> Iterator[dict[str, Any]]:
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                yield json.loads(line)


def truncate_metrics(path: str | Path, step: int) -> int:
    """Drop the records of steps after `step` (what a resume from a checkpoint at `step` redoes), atomically;
    returns how many were dropped. Records without a step are kept."""
    path = Path(path)
    if not path.is_file():
        return 0
    keep, dropped = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            dropped += 1
            continue
        if isinstance(record.get("step"), int) and record["step"] > step:
            dropped += 1
        else:
            keep.append(line)
    if dropped:
        atomic_write_text(path, "".join(f"{ln}\n" for ln in keep))
    return dropped
