"""Lists whose targets are not one class: several labels per video (multi-label, Charades) or a repetition count
(UCFRep). Classification lists are `lists.read_video_list`'s.

Formats (relative paths are prefixed with ``data_root``; blank lines and ``#`` lines are skipped):

- **multi-label**, whitespace-separated ``path labels`` with the class ids joined by commas (``v.mp4 3,17,42``), a
  bare ``path`` for a video without any label; JSONL ``{"path": "v.mp4", "labels": [3, 17, 42]}``; or CSV / TSV with
  a header holding ``path`` and ``labels`` (ids separated by ``;``, ``|`` or spaces).
- **counting**, ``path count`` (``v.mp4 7``; a number > 0, fractions allowed); JSONL ``{"path": ..., "count": 7}``;
  CSV / TSV with ``path`` and ``count`` columns.

Every label must be an integer class id in ``[0, num_classes)`` when `num_classes` is given (ids >= 0 otherwise), and
every count > 0; an error names the file, the line and the value.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import torch
from torch import Tensor

from .lists import ListError, VideoEntry

__all__ = ["read_multilabel_list", "read_count_list"]


def _records(path: str | Path, value_key: str) -> list[tuple[str, str, object]]:
    """(where, path, raw value) per entry of a list file; raw value None when the line has no second field."""
    path = Path(path)
    if not path.is_file():
        raise ListError(f"video list {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8-sig")
    lines = [(no, ln) for no, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ListError(f"{path}: the list is empty")
    out: list[tuple[str, str, object]] = []
    first = lines[0][1]
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson") or first.lstrip().startswith("{"):
        for no, ln in lines:
            try:
                rec = json.loads(ln)
            except json.JSONDecodeError as e:
                raise ListError(f"{path}:{no}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict) or "path" not in rec:
                raise ListError(f"{path}:{no}: expected an object with a \"path\" key")
            out.append((f"{path}:{no}", str(rec["path"]), rec.get(value_key)))
        return out
    delimiter = "\t" if "\t" in first else ","
    cells = [c.strip().lower() for c in first.split(delimiter)]
    if "path" in cells:
        reader = csv.DictReader(io.StringIO("\n".join(ln for _, ln in lines)), delimiter=delimiter)
        if value_key not in [c.strip().lower() for c in reader.fieldnames or []]:
            raise ListError(f"{path}:{lines[0][0]}: the header has no {value_key!r} column")
        for (no, _), row in zip(lines[1:], reader):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
            out.append((f"{path}:{no}", row["path"], row.get(value_key) or None))
        return out
    for no, ln in lines:
        fields = ln.split()
        if len(fields) > 2:
            raise ListError(f"{path}:{no}: expected `path {value_key}` separated by whitespace, got {len(fields)} "
                            "fields")
        out.append((f"{path}:{no}", fields[0], fields[1] if len(fields) == 2 else None))
    return out


def _join(data_root: str, path: str) -> str:
    path = os.path.expanduser(path)
    return path if not data_root or os.path.isabs(path) else os.path.join(data_root, path)


def _label_ids(raw: object, where: str, num_classes: int) -> list[int]:
    if raw is None or raw == "":
        return []
    items = raw if isinstance(raw, list) else re.split(r"[,;|\s]+", str(raw).strip())
    ids = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, bool) or not re.fullmatch(r"\d+", text):
            raise ListError(f"{where}: label {item!r} is not a class id (an integer >= 0)")
        y = int(text)
        if num_classes and y >= num_classes:
            raise ListError(f"{where}: label {y} is outside the class list (finetune.num_classes={num_classes}: "
                            f"ids 0..{num_classes - 1})")
        ids.append(y)
    return ids


def read_multilabel_list(path: str | Path, data_root: str = "", num_classes: int = 0) -> tuple[list[VideoEntry],
                                                                                                 Tensor]:
    """A multi-label list -> (entries, targets (N, K) float32 multi-hot). K = `num_classes`, or the largest id + 1
    when it is 0. Entries carry label -1 (their labels are the targets' rows)."""
    rows = _records(path, "labels")
    ids = [_label_ids(raw, where, num_classes) for where, _, raw in rows]
    k = num_classes or max((max(i) + 1 for i in ids if i), default=0)
    if k == 0:
        raise ListError(f"{path}: no video has a label")
    targets = torch.zeros(len(rows), k)
    for r, labels in enumerate(ids):
        targets[r, labels] = 1.0
    return [VideoEntry(_join(data_root, p), -1) for _, p, _ in rows], targets


def read_count_list(path: str | Path, data_root: str = "") -> tuple[list[VideoEntry], Tensor]:
    """A counting list -> (entries, counts (N,) float32 > 0)."""
    rows = _records(path, "count")
    counts = []
    for where, _, raw in rows:
        try:
            c = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ListError(f"{where}: expected a repetition count (a number > 0), got {raw!r}") from None
        if not c > 0 or c != c or c == float("inf"):
            raise ListError(f"{where}: a repetition count must be a finite number > 0, got {raw!r}")
        counts.append(c)
    return [VideoEntry(_join(data_root, p), -1) for _, p, _ in rows], torch.tensor(counts, dtype=torch.float32)
