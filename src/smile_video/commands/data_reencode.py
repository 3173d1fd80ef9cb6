"""`smile data-reencode LIST --out DIR`: re-encode a video list once for fast training reads (short side 320,
a keyframe every 16 frames) and write the list of the new files."""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from ..data.decode import VideoDecodeError
from ..data.lists import VideoEntry, read_video_list
from ..data.reencode import reencode_video
from ..runlog import atomic_write_text

EPILOG = """The new list (DIR/list.jsonl unless --list-out) names the files relative to DIR: train with
data.train_list=DIR/list.jsonl data.data_root=DIR. Files already in DIR are kept (re-run to resume; --overwrite to
redo them). Frame folders are listed as they are.

exit status:
  0  every video was re-encoded (or already was)
  1  some video could not be read (each is named; the others are done and listed), or the list cannot be read
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("list", metavar="LIST", help="VideoMAE list, CSV/TSV with a header, JSONL, or a folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the re-encoded videos and the list")
    parser.add_argument("--data-root", default="", metavar="R", help="prefix for relative paths in the list")
    parser.add_argument("--label-map", default=None, metavar="FILE", help="class name -> id file (docs/data.md)")
    parser.add_argument("--list-out", default=None, metavar="FILE", help="the new list (default: DIR/list.jsonl)")
    parser.add_argument("--short-side", type=int, default=320, help="short side in pixels, never upscaled; 0 = keep "
                                                                   "(default: 320)")
    parser.add_argument("--gop", type=int, default=16, help="frames between keyframes (default: 16)")
    parser.add_argument("--crf", type=int, default=23, help="x264 quality, lower is better (default: 23)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset (default: veryfast)")
    parser.add_argument("--workers", type=int, default=0, help="processes (default: 0 = this process)")
    parser.add_argument("--overwrite", action="store_true", help="re-encode files already in DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def output_name(path: str, data_root: str) -> str:
    """Where a source lands under the output folder: its path below `data_root` (else its path without the root
    slash), with the suffix .mp4."""
    root = os.path.abspath(data_root) if data_root else ""
    full = os.path.abspath(path)
    rel = os.path.relpath(full, root) if root and full.startswith(root + os.sep) else full.lstrip(os.sep)
    return str(Path(rel).with_suffix(".mp4"))


def _one(job: tuple) -> tuple[int, dict | None, str | None]:
    i, src, dst, opts, overwrite = job
    if os.path.isfile(dst) and not overwrite:
        return i, {"src_bytes": os.path.getsize(src) if os.path.isfile(src) else 0,
                   "dst_bytes": os.path.getsize(dst), "kept": True}, None
    try:
        return i, reencode_video(src, dst, **opts), None
    except VideoDecodeError as e:
        return i, None, e.reason


def run(args: argparse.Namespace) -> int:
    entries: list[VideoEntry] = read_video_list(args.list, args.data_root, args.label_map)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    opts = {"short_side": args.short_side, "gop": args.gop, "crf": args.crf, "preset": args.preset}
    jobs = [(i, e.path, str(out / output_name(e.path, args.data_root)), opts, args.overwrite)
            for i, e in enumerate(entries) if not os.path.isdir(e.path)]
    results: dict[int, tuple[dict | None, str | None]] = {}
    bar = tqdm(total=len(jobs), desc="re-encode", disable=args.quiet, file=sys.stderr)
    if args.workers > 0:
        with ProcessPoolExecutor(args.workers) as pool:
            for i, info, err in pool.map(_one, jobs, chunksize=4):
                results[i] = (info, err)
                bar.update(1)
    else:
        for job in jobs:
            i, info, err = _one(job)
            results[i] = (info, err)
            bar.update(1)
    bar.close()
    lines, bad, src_bytes, dst_bytes = [], [], 0, 0
    for i, e in enumerate(entries):
        info, err = results.get(i, ({}, None))
        if err is not None:
            bad.append(f"{e.path}: {err}")
            continue
        path = e.path if os.path.isdir(e.path) else output_name(e.path, args.data_root)
        record = {"path": path, "label": e.label}
        if e.start is not None:
            record["start"] = e.start
        if e.total is not None:
            record["total"] = e.total
        lines.append(json.dumps(record))
        src_bytes += info.get("src_bytes", 0)
        dst_bytes += info.get("dst_bytes", 0)
    list_out = Path(args.list_out) if args.list_out else out / "list.jsonl"
    atomic_write_text(list_out, "".join(line + "\n" for line in lines))
    ratio = f" ({dst_bytes / src_bytes:.2f}x the original size)" if src_bytes else ""
    print(f"re-encoded {len(jobs) - len(bad)} of {len(jobs)} videos to {out} (short side {args.short_side or 'kept'}, "
          f"keyframe every {args.gop} frames): {src_bytes / 1e6:.1f} MB -> {dst_bytes / 1e6:.1f} MB{ratio}; list: "
          f"{list_out} (use data.data_root={out})")
    for line in bad:
        print(f"  could not read {line}", file=sys.stderr)
    return 1 if bad else 0
