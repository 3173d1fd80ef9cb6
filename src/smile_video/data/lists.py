"""Annotation lists: which videos a dataset holds and their labels.

Supported inputs (`read_video_list` picks by what it finds):

- **VideoMAE format** (no header, whitespace-separated, usually named ``.csv``): ``path`` (unlabelled, -1),
  ``path label``, ``path total label`` (rawframes) or ``path start total label`` (VideoMAE V2).
  In the two-column form the label may also be a class name.
- **CSV / TSV with a header**: columns found by name, e.g. ``path``/``video``/``filename`` and
  ``label``/``class``/``target`` (ids or names), optional ``start`` and ``total``.
- **JSONL** (``.jsonl`` / ``.json``): one object per line with the same keys.
- **A folder**: every video file (and every frame folder, i.e. a directory of images) below it. Videos in
  sub-folders are labelled by the first sub-folder's name (sorted names -> ids); videos at the top level get -1.

Relative paths in list files are resolved against ``data_root`` when it is given, else against the list file's own
folder; when none of the first entries is found there but they are found from the current directory (lists written
for that), the current directory is used with a warning. `require_files` checks, before any work, that a list's
files exist. Class names become ids through a label map: the one given, or sorted unique names.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "VideoEntry",
    "has_header",
    "ListError",
    "require_files",
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "read_video_list",
    "label_map",
    "read_label_map",
    "class_counts",
    "is_frame_folder",
]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".flv", ".mpg", ".mpeg", ".wmv", ".ogv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

_PATH_KEYS = ("path", "video", "video_path", "videopath", "file", "filename", "file_name", "clip", "clip_path",
              "frames", "frame_dir", "name")
_LABEL_KEYS = ("label", "label_id", "labels", "class", "class_id", "class_name", "category", "target", "label_name")
_START_KEYS = ("start", "start_idx", "start_frame", "start_index")
_TOTAL_KEYS = ("total", "total_frames", "num_frames", "frame_count", "length")


class ListError(ValueError):
    """A list that cannot be read, with the file and line named."""


@dataclass
class VideoEntry:
    """One video of a list.

    `label` is the class id (-1 = unlabelled). `start`/`total` select a segment of the video's frames
    (`total` < 0 or None = to the end); for frame folders `start` is VideoMAE V2's file-number offset and is not
    used (frames are the folder's images in natural order). `label_name` is kept when the list gave a name.
    """

    path: str
    label: int
    start: int | None = None
    total: int | None = None
    label_name: str | None = None


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def is_frame_folder(path: str | Path) -> bool:
    """True when `path` is a directory holding at least one image file (one video as frames)."""
    path = Path(path)
    if not path.is_dir():
        return False
    with os.scandir(path) as it:
        return any(e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS) for e in it)


def _join(data_root: str, path: str) -> str:
    path = os.path.expanduser(path)
    return path if not data_root or os.path.isabs(path) else os.path.join(data_root, path)


def _parse_int(text: str, where: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ListError(f"{where}: {what} must be an integer, got {text!r}") from None


def _label_value(value: object, where: str) -> tuple[int | None, str | None]:
    """A raw label -> (id, None) for integers or (None, name) for names."""
    if isinstance(value, bool):
        raise ListError(f"{where}: label must be an integer or a class name, got {value!r}")
    if isinstance(value, int):
        return value, None
    if isinstance(value, float) and value.is_integer():
        return int(value), None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text), None
        if text:
            return None, text
    raise ListError(f"{where}: label must be an integer or a class name, got {value!r}")


def _apply_names(entries: list[VideoEntry], names: dict[str, int] | None, source: str) -> list[VideoEntry]:
    """Give named entries their ids: from `names` when given, else sorted unique names."""
    named = sorted({e.label_name for e in entries if e.label_name is not None and e.label < 0})
    if not named:
        return entries
    mapping = names if names is not None else {n: i for i, n in enumerate(named)}
    missing = [n for n in named if n not in mapping]
    if missing:
        raise ListError(f"{source}: class names {missing[:5]} are not in the label map "
                        f"({len(mapping)} names, e.g. {sorted(mapping)[:5]})")
    for e in entries:
        if e.label_name is not None and e.label < 0:
            e.label = mapping[e.label_name]
    return entries


def _find_key(keys: list[str], choices: tuple[str, ...]) -> str | None:
    lowered = {k.strip().lower(): k for k in keys}
    for c in choices:
        if c in lowered:
            return lowered[c]
    return None


def _entry_from_record(rec: dict, where: str, data_root: str) -> VideoEntry:
    keys = list(rec)
    pk = _find_key(keys, _PATH_KEYS)
    if pk is None or rec[pk] in (None, ""):
        raise ListError(f"{where}: no video path (expected one of the keys {list(_PATH_KEYS)}; got {keys})")
    lk = _find_key(keys, _LABEL_KEYS)
    label, name = (-1, None) if lk is None or rec[lk] in (None, "") else _label_value(rec[lk], where)
    sk, tk = _find_key(keys, _START_KEYS), _find_key(keys, _TOTAL_KEYS)
    start = None if sk is None or rec[sk] in (None, "") else _parse_int(str(rec[sk]), where, "start")
    total = None if tk is None or rec[tk] in (None, "") else _parse_int(str(rec[tk]), where, "total")
    return VideoEntry(_join(data_root, str(rec[pk])), -1 if label is None else label, start, total, name)


def _read_jsonl(path: Path, text: str, data_root: str) -> list[VideoEntry]:
    entries = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ListError(f"{where}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise ListError(f"{where}: expected a JSON object per line, got {type(rec).__name__}")
        entries.append(_entry_from_record(rec, where, data_root))
    return entries


def _read_table(path: Path, text: str, delimiter: str, data_root: str) -> list[VideoEntry]:
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    entries = []
    for no, row in enumerate(reader, 2):
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        if None in row:
            raise ListError(f"{path}:{no}: more fields than the header's {len(reader.fieldnames or [])}")
        entries.append(_entry_from_record({k: (v or "").strip() for k, v in row.items()}, f"{path}:{no}",
                                          data_root))
    return entries


def _read_videomae(path: Path, text: str, data_root: str) -> list[VideoEntry]:
    entries = []
    for no, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{path}:{no}"
        if len(fields) == 1:  # a bare path: unlabelled (pretraining lists)
            entries.append(VideoEntry(_join(data_root, fields[0]), -1))
        elif len(fields) == 2:
            label, name = _label_value(fields[1], where)
            entries.append(VideoEntry(_join(data_root, fields[0]), -1 if label is None else label, label_name=name))
        elif len(fields) in (3, 4):
            names = ("total", "label") if len(fields) == 3 else ("start", "total", "label")
            nums = [_parse_int(f, where, w) for f, w in zip(fields[1:], names)]
            start = nums[0] if len(fields) == 4 else None
            entries.append(VideoEntry(_join(data_root, fields[0]), nums[-1], start, nums[-2]))
        else:
            raise ListError(f"{where}: expected `path`, `path label`, `path total label` or `path start total label` "
                            f"separated by spaces, got {len(fields)} fields (paths with spaces need a CSV/TSV "
                            f"with a header or JSONL)")
    return entries


def has_header(first_line: str, delimiter: str) -> bool:
    """Whether a CSV / TSV list's first line is a header row (a cell names the path column)."""
    cells = [c.strip().lower() for c in first_line.split(delimiter)]
    return any(c in _PATH_KEYS for c in cells)


def _read_folder(root: Path) -> list[VideoEntry]:
    """Every video file and frame folder under `root` in natural path order; labels from the first sub-folder."""
    items: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort(key=_natural_key)
        here = Path(dirpath)
        if here != root and any(f.lower().endswith(IMAGE_EXTENSIONS) for f in filenames):
            items.append(here)  # a frame folder is one video: do not descend further
            dirnames[:] = []
            continue
        items.extend(here / f for f in sorted(filenames, key=_natural_key) if f.lower().endswith(VIDEO_EXTENSIONS))
    items.sort(key=lambda p: [_natural_key(part) for part in p.relative_to(root).parts])
    if not items:
        raise ListError(f"{root}: folder holds no videos ({', '.join(VIDEO_EXTENSIONS)}) and no frame folders")
    depths = {len(p.relative_to(root).parts) for p in items}
    if depths == {1}:
        return [VideoEntry(str(p), -1) for p in items]
    if 1 in depths:
        top = next(p for p in items if len(p.relative_to(root).parts) == 1)
        raise ListError(f"{root}: some videos sit in class sub-folders and some at the top level (e.g. {top}); "
                        f"put every video in a class folder, or none")
    return [VideoEntry(str(p), -1, label_name=p.relative_to(root).parts[0]) for p in items]


def read_video_list(path: str | Path, data_root: str = "",
                    label_names: dict[str, int] | str | Path | None = None) -> list[VideoEntry]:
    """Read any supported list (see the module docstring) into entries, in file order.

    `label_names`: a label map (name -> id) or a file for `read_label_map`, used for lists that name classes.
    Errors name the file and line.
    """
    path = Path(path)
    names = read_label_map(label_names) if isinstance(label_names, (str, Path)) else label_names
    if path.is_dir():
        return _apply_names(_read_folder(path), names, str(path))
    if not path.is_file():
        raise ListError(f"video list {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8-sig")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ListError(f"{path}: the list is empty")
    first = lines[0]
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson") or first.lstrip().startswith("{"):
        entries = _read_jsonl(path, text, data_root)
    elif "\t" in first and has_header(first, "\t"):
        entries = _read_table(path, text, "\t", data_root)
    elif ("," in first or len(first.split()) == 1) and has_header(first, ","):
        entries = _read_table(path, text, ",", data_root)
    elif "," in first and len(first.split()) == 1:
        raise ListError(f"{path}:1: comma-separated list without a header; add a header line such as "
                        f"`path,label` (the VideoMAE format separates fields with spaces)")
    else:
        entries = _read_videomae(path, text, data_root)
    if not entries:
        raise ListError(f"{path}: the list holds no entries")
    if not data_root:
        _resolve_relative(entries, path)
    return _apply_names(entries, names, str(path))


def _resolve_relative(entries: list[VideoEntry], list_path: Path, sample: int = 32) -> None:
    """No data_root: relative paths are relative to the list's folder, unless none of the first `sample` is there and
    some are found from the current directory (then those stay, with a warning)."""
    relative = [e for e in entries if not os.path.isabs(e.path)]
    base = list_path.parent
    if not relative or base == Path("."):
        return
    first = relative[:sample]
    if not any((base / e.path).exists() for e in first) and any(os.path.exists(e.path) for e in first):
        log.warning("%s: its relative paths are not under the list's folder %s but are found from the current "
                    "directory; using that (set data_root to the folder they are relative to)", list_path, base)
        return
    for e in relative:
        e.path = str(base / e.path)


def require_files(entries: list[VideoEntry], list_path: str | Path, data_root: str, root_key: str,
                  sample: int = 200) -> None:
    """Before any work: raise ListError when none of up to `sample` entries (spread over the list) exists, naming the
    list, the folder relative paths were resolved against and the key that sets it. A few missing files are left to
    the dataset's skip logic (`smile data-check` lists them)."""
    if not entries:
        return
    step = max(1, len(entries) // sample)
    checked = entries[::step][:sample]
    if any(os.path.exists(e.path) for e in checked):
        return
    where = f"{root_key}={data_root!r}" if data_root else f"the list's folder {str(Path(list_path).parent)!r} " \
        f"({root_key} is not set)"
    raise ListError(f"{list_path}: none of {len(checked)} checked files exist (e.g. {checked[0].path!r}); relative "
                    f"paths were resolved against {where}; set {root_key}=DIR to the folder they are relative to")


def label_map(entries: list[VideoEntry]) -> dict[str, int]:
    """Class name -> id for the entries that carry a name (empty when the list only had ids).

    Raises when one name maps to two ids, naming both.
    """
    out: dict[str, int] = {}
    for e in entries:
        if e.label_name is None:
            continue
        if out.setdefault(e.label_name, e.label) != e.label:
            raise ListError(f"class {e.label_name!r} has two ids, {out[e.label_name]} and {e.label} ({e.path})")
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def read_label_map(path: str | Path) -> dict[str, int]:
    """A label map file -> name -> id.

    Formats: JSON object ``{"name": id}``; or text with one class per line, either ``name`` (id = line index,
    blank lines skipped) or ``id name`` / ``name,id`` pairs.
    """
    path = Path(path)
    if not path.is_file():
        raise ListError(f"label map {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        bad = [k for k, v in data.items() if not isinstance(v, int) or isinstance(v, bool)]
        if bad:
            raise ListError(f"{path}: ids must be integers (bad: {bad[:5]})")
        return dict(data)
    out: dict[str, int] = {}
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for no, line in enumerate(lines):
        m = re.fullmatch(r"(-?\d+)[\s,]+(.+)", line)
        n = re.fullmatch(r"(.+?)[\s,]+(-?\d+)", line)
        if m:
            name, idx = m.group(2).strip(), int(m.group(1))
        elif n:
            name, idx = n.group(1).strip(), int(n.group(2))
        else:
            name, idx = line, no
        if name in out:
            raise ListError(f"{path}: class {name!r} appears twice")
        out[name] = idx
    return out


def class_counts(entries: list[VideoEntry]) -> dict[int, int]:
    """Label id -> number of entries, sorted by id."""
    counts: dict[int, int] = {}
    for e in entries:
        counts[e.label] = counts.get(e.label, 0) + 1
    return dict(sorted(counts.items()))
