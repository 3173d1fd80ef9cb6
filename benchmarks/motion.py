"""Motion-infusion throughput: batched compositing (CPU at 1 thread and all threads, CUDA when present), per
backend (c, torch, triton), against a straightforward per-frame PIL reference (resize, rotate and paste each object
in each frame) on the same motion params, measured in the same run.

    python benchmarks/motion.py                       # defaults: batch 32, 16 x 224 x 224, 2 objects (ViT-B)
    python benchmarks/motion.py --devices cpu1 --backends c --json out.json

Prints clips/s (median over repeats) and writes them as JSON when asked: `composite` in place on a fresh batch (what
training does; the copy is not timed), `composite` returning a copy, and `infuse_motion` (sampling + atlas lookup +
composite, in place). The PIL reference is single-threaded by nature, so "per CPU core" compares it with our
1-thread figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from smile_video.config import MotionConfig
from smile_video.motion import MotionParams, atlas_size_for, composite, infuse_motion, resolve_backend, sample_motion
from smile_video.objects import default_bank


def pil_reference(video: torch.Tensor, sprites: list[Image.Image], params: MotionParams) -> torch.Tensor:
    """The per-frame way: for each clip, frame and object, resize the sprite, rotate it (expand) and paste it
    with its own alpha as the mask. video: (B, 3, T, H, W) uint8 -> same."""
    out = video.permute(0, 2, 3, 4, 1).numpy().copy()  # (B, T, H, W, 3)
    ids, centers = params.object_ids.tolist(), params.centers.tolist()
    angles, scales, sizes = params.angles.tolist(), params.scales.tolist(), params.sizes.tolist()
    for b in range(params.batch):
        for t in range(params.num_frames):
            frame = Image.fromarray(out[b, t])
            for k in range(params.num_objects):
                s = scales[b][k][t]
                w, h = max(1, round(sizes[b][k][0] * s)), max(1, round(sizes[b][k][1] * s))
                obj = sprites[ids[b][k]].resize((w, h), Image.Resampling.BILINEAR)
                obj = obj.rotate(angles[b][k][t], resample=Image.Resampling.BILINEAR, expand=True)
                cx, cy = centers[b][k][t]
                frame.paste(obj, (round(cx - obj.width / 2), round(cy - obj.height / 2)), obj)
            out[b, t] = np.asarray(frame)
    return torch.from_numpy(out).permute(0, 4, 1, 2, 3)


def _time(fn, repeats: int, sync=lambda: None, setup=lambda: None) -> float:
    """Median seconds of ``fn(setup())`` over `repeats` calls after one warm-up; `setup` is not timed."""
    fn(setup())  # warm-up (kernel build or load, atlas upload, allocator)
    sync()
    times = []
    for _ in range(repeats):
        arg = setup()
        sync()
        start = time.perf_counter()
        fn(arg)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--objects", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--reference-clips", type=int, default=8, help="clips the PIL reference composites per repeat")
    p.add_argument("--devices", default="cpu1,cpu,cuda", help="comma list of cpu1 (1 thread), cpu (all), cuda")
    p.add_argument("--backends", default="c,torch,triton", help="comma list of composite backends to time")
    p.add_argument("--trajectory", default="paper", choices=["paper", "official"])
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()

    cfg = MotionConfig(num_objects=args.objects, trajectory=args.trajectory)
    bank = default_bank("pretrain")
    g = torch.Generator().manual_seed(0)
    B, T, S = args.batch, args.frames, args.size
    video = torch.randint(0, 256, (B, 3, T, S, S), dtype=torch.uint8, generator=g)
    params = sample_motion(B, T, S, S, len(bank), cfg, g)
    a_size = atlas_size_for(cfg, S, S, bank.max_side)
    results: dict[str, object] = {
        "batch": B, "frames": T, "size": S, "objects": args.objects, "atlas": a_size, "bank_objects": len(bank),
        "trajectory": args.trajectory, "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "torch": torch.__version__,
    }

    # the PIL reference (single thread), on a few clips of the same batch
    n_ref = min(args.reference_clips, B)
    sprites = [Image.fromarray(s.permute(1, 2, 0).numpy(), "RGBA") for s in bank.sprites]
    sub = MotionParams(*(getattr(params, f)[:n_ref] for f in ("object_ids", "centers", "angles", "scales", "sizes")))
    ref = _time(lambda _: pil_reference(video[:n_ref], sprites, sub), max(1, args.repeats // 2))
    ref_rate = n_ref / ref
    results["pil_reference_clips_per_s"] = ref_rate
    print(f"PIL per-frame reference (1 thread): {ref_rate:8.1f} clips/s")

    all_threads = torch.get_num_threads()
    for dev in args.devices.split(","):
        if dev == "cuda" and not torch.cuda.is_available():
            print("cuda: not available, skipped")
            continue
        if dev in ("cpu1", "cpu"):
            torch.set_num_threads(1 if dev == "cpu1" else all_threads)
            device, sync, label = torch.device("cpu"), (lambda: None), f"cpu x{torch.get_num_threads()} threads"
        elif dev == "cuda":
            device, sync = torch.device("cuda"), torch.cuda.synchronize
            label = f"cuda ({torch.cuda.get_device_name()})"
        else:
            raise SystemExit(f"unknown device {dev!r}")
        v, atlas, pr = video.to(device), bank.atlas(a_size, device), params.to(device)
        for backend in args.backends.split(","):
            try:
                resolve_backend(backend, device)
            except ValueError as e:
                print(f"{label:28s} {backend:6s}: skipped ({e})")
                continue
            fresh = v.clone  # a new batch per repeat (not timed): in place is what training does
            inplace = _time(lambda x, b=backend, a=atlas, q=pr: composite(x, a, q, inplace=True, backend=b),
                            args.repeats, sync, fresh)
            copy = _time(lambda _, b=backend, v=v, a=atlas, q=pr: composite(v, a, q, backend=b), args.repeats, sync)
            mcfg = replace(cfg, device=device.type, kernel=backend)
            gd = torch.Generator(device=device).manual_seed(1)
            full = _time(lambda x, gd=gd, m=mcfg: infuse_motion(x, bank, m, gd, inplace=True), args.repeats, sync,
                         fresh)
            key = f"{dev}_{backend}"
            results[f"{key}_composite_clips_per_s"] = B / inplace
            results[f"{key}_composite_copy_clips_per_s"] = B / copy
            results[f"{key}_infuse_clips_per_s"] = B / full
            results[f"{key}_label"] = label
            print(f"{label:28s} {backend:6s}: composite {B / inplace:8.1f} clips/s ({B / inplace / ref_rate:5.1f}x "
                  f"the PIL reference), with a copy of the batch {B / copy:8.1f}, sample + composite "
                  f"{B / full:8.1f}")
    torch.set_num_threads(all_threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
