"""`smile data-check LIST`: decode every entry of a video list and report what training would skip."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm import tqdm

from ..data.decode import DECODERS, VideoDecodeError, check_video, resolve_decoder
from ..data.lists import VideoEntry, class_counts, label_map, read_label_map, read_video_list
from ..runlog import atomic_write_text

EPILOG = """exit status:
  0  every entry decodes and has at least --min-frames frames
  1  some entry is missing, undecodable, truncated or too short (all are listed), or the list cannot be read
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("list", metavar="LIST", help="VideoMAE list, CSV/TSV with a header, JSONL, or a folder")
    parser.add_argument("--data-root", default="", metavar="R",
                        help="the folder relative paths in the list are relative to (default: the list's own folder)")
    parser.add_argument("--label-map", default=None, metavar="FILE",
                        help="class name -> id file (docs/data.md): names the classes in the summary")
    parser.add_argument("--max-lines", type=int, default=20, metavar="N",
                        help="problem files listed one per line (default 20; the rest are counted, all in --json)")
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the full report as JSON to OUT")
    parser.add_argument("--decoder", default="pyav", choices=("auto", *DECODERS),
                        help="video decoder (default: pyav, the evaluation's; auto: the one data.decoder=auto picks "
                             "for training)")
    parser.add_argument("--num-frames", type=int, default=16, help="clip length T (default: 16)")
    parser.add_argument("--min-frames", type=int, default=None,
                        help="videos with fewer frames are too short (default: --num-frames, as training does)")
    parser.add_argument("--quick", action="store_true",
                        help="only open each file and decode its first and last frame (default: decode every frame)")
    parser.add_argument("--workers", type=int, default=0, help="decoding processes (default: 0 = this process)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check_one(job: tuple[VideoEntry, str, bool, int]) -> dict[str, Any]:
    entry, decoder, full, min_frames = job
    record: dict[str, Any] = {"path": entry.path, "label": entry.label, "frames": None, "status": "ok",
                              "reason": ""}
    try:
        n = check_video(entry.path, decoder, full=full)
    except VideoDecodeError as e:
        record.update(status="bad", reason=e.reason)
        return record
    if entry.total is not None and entry.total >= 0:
        start = 0 if entry.start is None or os.path.isdir(entry.path) else entry.start  # as the dataset reads it
        if start + entry.total > n:
            record.update(frames=n, status="bad", reason=f"the list asks for frames [{start}, {start + entry.total})"
                                                         f" but the video has {n}")
            return record
        n = entry.total
    record["frames"] = n
    if n < min_frames:
        record.update(status="too_short", reason=f"too short: {n} frames, need at least {min_frames}")
    return record


def check_entries(entries: list[VideoEntry], decoder: str = "pyav", full: bool = True, min_frames: int = 16,
                  workers: int = 0, progress: bool = False) -> dict[str, Any]:
    """Check every entry; returns the report (summary numbers, label map, class counts, per-file records)."""
    jobs = [(e, decoder, full, min_frames) for e in entries]
    bar = tqdm(total=len(jobs), desc="data-check", unit="video", disable=not progress, file=sys.stderr)
    records = []
    if workers > 0:
        with ProcessPoolExecutor(workers) as pool:
            for r in pool.map(_check_one, jobs, chunksize=8):
                records.append(r)
                bar.update()
    else:
        for job in jobs:
            records.append(_check_one(job))
            bar.update()
    bar.close()
    frames = [r["frames"] for r in records if r["frames"] is not None]
    names = label_map(entries)
    return {
        "entries": len(records),
        "ok": sum(r["status"] == "ok" for r in records),
        "bad": sum(r["status"] == "bad" for r in records),
        "too_short": sum(r["status"] == "too_short" for r in records),
        "min_frames": min_frames,
        "frames": ({"min": min(frames), "median": statistics.median(frames), "max": max(frames)} if frames else None),
        "label_map": names,
        "class_counts": {str(k): v for k, v in class_counts(entries).items()},
        "problems": [r for r in records if r["status"] != "ok"],
        "records": records,
    }


def _print_report(report: dict[str, Any], max_lines: int = 20) -> None:
    print(f"entries: {report['entries']}  ok: {report['ok']}  bad: {report['bad']}  "
          f"too short (< {report['min_frames']} frames): {report['too_short']}")
    if report["frames"]:
        f = report["frames"]
        print(f"frames per video: min {f['min']}  median {f['median']:g}  max {f['max']}")
    counts = report["class_counts"]
    names = {v: k for k, v in report["label_map"].items()}
    print(f"classes: {len(counts)}" + ("" if names else " (the list gives ids, no names)"))
    for label, count in list(counts.items())[:50]:
        print(f"  {label:>5} {names.get(int(label), ''):<30} {count}")
    if len(counts) > 50:
        print(f"  ... {len(counts) - 50} more (see --json)")
    if report["problems"]:
        print("problems (these files would be skipped during training):")
        for r in report["problems"][:max_lines]:
            print(f"  [{r['status']}] {r['path']}: {r['reason']}")
        rest = len(report["problems"]) - max_lines
        if rest > 0:
            print(f"  ... and {rest} more (all of them with --json OUT)")


def run(args: argparse.Namespace) -> int:
    if args.num_frames < 1 or args.workers < 0 or (args.min_frames is not None and args.min_frames < 1) \
            or args.max_lines < 0:
        raise ValueError("--num-frames and --min-frames must be >= 1, --workers and --max-lines >= 0")
    names = read_label_map(args.label_map) if args.label_map else None
    entries = read_video_list(args.list, args.data_root, names)
    if not os.path.isdir(args.list):
        print(f"{args.list}: relative paths resolved against "
              + (f"--data-root {args.data_root}" if args.data_root else "the list's folder (--data-root to change)"))
    min_frames = args.num_frames if args.min_frames is None else args.min_frames
    decoder = resolve_decoder(args.decoder)
    if args.decoder == "auto":
        print(f"decoder: {decoder} (auto)")
    report = check_entries(entries, decoder, full=not args.quick, min_frames=min_frames, workers=args.workers,
                           progress=not args.quiet)
    if names:  # the label map names every class, also those the list gives as ids
        report["label_map"] = dict(sorted(names.items(), key=lambda kv: kv[1]))
    _print_report(report, args.max_lines)
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 1 if report["problems"] else 0
