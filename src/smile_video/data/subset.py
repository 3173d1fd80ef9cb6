"""Reproducible subsets of a video list: SEVERE's low-shot lists (1,000 samples) and the data-scale study (Fig. 5).

A subset is a prefix of one seeded order of the list's entries (`subset_order`), so it is a pure function of
(list, mode, seed, size) and **a smaller subset is always contained in a larger one** of the same seed and mode
(12.5% in 25% in 50% in 100%). Two orders:

- ``balanced`` (low-shot): round robin over the classes, each class's entries in a seeded random order and the
  classes in a seeded order. A prefix of n entries holds the same number (to within one) of every class that still
  has entries; a class that runs out leaves its share to the others ("class-balanced as far as the list allows").
- ``stratified`` (fractions): systematic stratified sampling. Entry with in-class rank r of class c (n_c entries)
  gets the key ``(r + u_c) / n_c``, u_c ~ U[0, 1) per class; the order sorts by key. A prefix of n entries holds
  within one of ``n * n_c / N`` entries of every class: the class proportions of the full list.

An unlabelled list (every label -1: a pretraining list) is one class; both orders are then a seeded permutation.
`write_subset` keeps the chosen lines of the list file as they are (header, format, relative paths), in list order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .lists import VideoEntry, read_video_list

__all__ = ["MODES", "subset_order", "subset_indices", "subset_size", "write_subset", "select_subset"]

MODES = ("balanced", "stratified")


def _groups(labels: Sequence[int]) -> dict[int, list[int]]:
    """Label -> entry indices in list order; a list that mixes labelled and unlabelled (-1) entries is refused."""
    groups: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        groups.setdefault(int(y), []).append(i)
    if -1 in groups and len(groups) > 1:
        raise ValueError(f"{len(groups[-1])} of {len(labels)} entries have no label (-1) and the others do: label "
                         "every entry, or none (an unlabelled list is subset as one class)")
    return groups


def subset_order(labels: Sequence[int], mode: str, generator: torch.Generator) -> list[int]:
    """A seeded order of the entry indices whose every prefix is a `mode` subset (module docstring).

    labels: (N,) class ids (-1 = unlabelled, then for every entry). Returns a permutation of range(N).
    """
    if mode not in MODES:
        raise ValueError(f"subset mode must be one of {MODES}, got {mode!r}")
    if not len(labels):
        raise ValueError("cannot take a subset of an empty list")
    groups = _groups(labels)
    classes = sorted(groups)
    class_rank = torch.randperm(len(classes), generator=generator).tolist()  # seeded class order (balanced ties)
    keys: list[tuple[float, int, int]] = []
    for c, rank in zip(classes, class_rank):
        members = groups[c]
        perm = torch.randperm(len(members), generator=generator).tolist()  # (n_c,) in-class order
        u = torch.rand((), generator=generator).item()
        for r, j in enumerate(perm):
            key = float(r) if mode == "balanced" else (r + u) / len(members)
            keys.append((key, rank, members[j]))
    keys.sort()
    return [i for _, _, i in keys]


def subset_size(num_entries: int, total: int | None = None, fraction: float | None = None) -> int:
    """Entries in the subset: `total`, or round(fraction * N); exactly one of them. Errors say why a size is empty
    or too large."""
    if (total is None) == (fraction is None):
        raise ValueError("give exactly one of a total (--total N) or a fraction (--fraction F)")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"the fraction must be in (0, 1], got {fraction}")
        n = round(fraction * num_entries)
        if n < 1:
            raise ValueError(f"a fraction of {fraction} of {num_entries} entries is an empty subset")
        return n
    assert total is not None
    if total < 1:
        raise ValueError(f"the subset would be empty: total must be >= 1, got {total}")
    if total > num_entries:
        raise ValueError(f"the list holds {num_entries} entries, fewer than the {total} asked for")
    return total


def subset_indices(labels: Sequence[int], total: int | None = None, fraction: float | None = None,
                   mode: str = "balanced", seed: int = 0) -> list[int]:
    """The chosen entry indices, in list order: the first `subset_size` entries of `subset_order` under `seed`."""
    n = subset_size(len(labels), total, fraction)
    order = subset_order(labels, mode, torch.Generator().manual_seed(seed))
    return sorted(order[:n])


def _data_lines(path: Path, text: str) -> tuple[list[str], list[str]]:
    """(header lines, one line per entry) of a list file, as `read_video_list` reads it: JSONL and VideoMAE lists
    have no header (VideoMAE comment lines are dropped), CSV / TSV lists one."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first = lines[0]
    jsonl = path.suffix.lower() in (".jsonl", ".json", ".ndjson") or first.lstrip().startswith("{")
    from .lists import has_header  # the reader's own header test

    if not jsonl and (("\t" in first and has_header(first, "\t")) or has_header(first, ",")):
        return [first], lines[1:]
    if jsonl:
        return [], lines
    return [], [ln for ln in lines if not ln.split()[0].startswith("#")]


def _entry_line(e: VideoEntry) -> str:
    """A VideoMAE-format line for an entry (lists that are folders have no lines of their own)."""
    if " " in e.path:
        raise ValueError(f"{e.path!r}: a path with spaces cannot be written as a VideoMAE line")
    label = e.label_name if e.label_name is not None else str(e.label)
    if e.start is not None:
        return f"{e.path} {e.start} {e.total if e.total is not None else -1} {e.label}"
    if e.total is not None:
        return f"{e.path} {e.total} {e.label}"
    return e.path if e.label < 0 and e.label_name is None else f"{e.path} {label}"


def write_subset(list_path: str | Path, indices: Sequence[int], out: str | Path,
                 entries: list[VideoEntry] | None = None) -> None:
    """Write the entries `indices` (sorted, 0-based) of `list_path` to `out`: the file's own lines (and header) for
    a list file, VideoMAE ``path label`` lines for a folder."""
    from ..runlog import atomic_write_text

    list_path = Path(list_path)
    entries = entries if entries is not None else read_video_list(list_path)
    if list_path.is_dir():
        lines = [_entry_line(entries[i]) for i in indices]
        header: list[str] = []
    else:
        header, data = _data_lines(list_path, list_path.read_text(encoding="utf-8-sig"))
        if len(data) != len(entries):  # e.g. quoted CSV fields spanning lines: write what was read instead
            header, data = [], [_entry_line(e) for e in entries]
        lines = [data[i] for i in indices]
    atomic_write_text(Path(out), "\n".join(header + lines) + "\n")


def select_subset(list_path: str | Path, out: str | Path, total: int | None = None, fraction: float | None = None,
                  mode: str = "balanced", seed: int = 0) -> dict[str, object]:
    """Read a list, choose the subset and write it; returns a summary: sizes and entries per class (subset / list)."""
    entries = read_video_list(list_path)
    labels = [e.label for e in entries]
    try:
        idx = subset_indices(labels, total, fraction, mode, seed)
    except ValueError as e:
        raise ValueError(f"{list_path}: {e}") from None
    write_subset(list_path, idx, out, entries)
    per_class: dict[int, list[int]] = {}
    for y in labels:
        per_class.setdefault(y, [0, 0])[1] += 1
    for i in idx:
        per_class[labels[i]][0] += 1
    return {"list": str(list_path), "out": str(out), "mode": mode, "seed": seed, "entries": len(entries),
            "subset": len(idx), "classes": len(per_class),
            "per_class": {str(c): v for c, v in sorted(per_class.items())}}
