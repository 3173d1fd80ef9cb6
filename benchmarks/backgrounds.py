"""Synthetic background throughput: images/s per background kind at one thread (what the training process spends
on them: synthetic sources are generated in it, `engine.loader`), and dead leaves against the whole-image mask formula
(one (K, H, W) mask per image, `int64` disc order: the implementation until session 13), measured in the same run.

    python benchmarks/backgrounds.py                  # 64 px (the CPU recipe), batch 32
    python benchmarks/backgrounds.py --size 224 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from smile_video.motion.backgrounds import dead_leaves, make_background


def dead_leaves_whole_image(batch: int, height: int, width: int, generator: torch.Generator, discs: int = 384,
                            r_min: float = 0.03, r_max: float = 0.4, alpha: float = 2.0) -> torch.Tensor:
    """The reference: the same draws and images as `dead_leaves`, one (K, H, W) mask and int64 order per image."""
    g, side = generator, max(height, width)
    u = torch.rand(batch, discs, generator=g)
    a, b = r_min ** (1 - alpha), r_max ** (1 - alpha)
    radius = (a + u * (b - a)) ** (1 / (1 - alpha)) * side
    margin = r_max * side
    cy = torch.rand(batch, discs, generator=g) * (height + 2 * margin) - margin
    cx = torch.rand(batch, discs, generator=g) * (width + 2 * margin) - margin
    colours = torch.randint(0, 256, (batch, discs + 1, 3), generator=g, dtype=torch.uint8)
    ys = torch.arange(height, dtype=torch.float32).view(1, 1, height, 1) + 0.5
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, 1, width) + 0.5
    out = torch.empty(batch, 3, height, width, dtype=torch.uint8)
    order = torch.arange(1, discs + 1).view(1, discs, 1, 1)
    for i in range(batch):
        inside = (ys - cy[i].view(1, -1, 1, 1)) ** 2 + (xs - cx[i].view(1, -1, 1, 1)) ** 2 <= radius[i].view(
            1, -1, 1, 1) ** 2
        out[i] = colours[i][(inside * order).amax(1)[0]].permute(2, 0, 1)
    return out


def median_time(fn, repeats: int) -> float:
    fn(0)
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        fn(r + 1)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    n, s = args.batch, args.size
    gen = torch.Generator().manual_seed
    if not torch.equal(dead_leaves(2, s, s, gen(0)), dead_leaves_whole_image(2, s, s, gen(0))):
        raise SystemExit("dead_leaves and the whole-image reference disagree")
    res: dict[str, float] = {}
    # interleaved, so both see the same machine load
    times: dict[str, list[float]] = {"deadleaves": [], "deadleaves, whole-image reference": []}
    for r in range(args.repeats):
        for name, fn in (("deadleaves", dead_leaves), ("deadleaves, whole-image reference", dead_leaves_whole_image)):
            t0 = time.perf_counter()
            fn(n, s, s, gen(r))
            times[name].append(time.perf_counter() - t0)
    for name, ts in times.items():
        res[name] = n / statistics.median(ts)
    for kind in ("noise", "black", "image"):  # one static image per clip for the static kinds; noise is per frame
        res[kind] = n / median_time(lambda r, k=kind: make_background(k, n, 8, s, s, gen(r)).contiguous(),
                                    args.repeats)
    print(f"background images/s at {s} px, batch {n}, 1 thread (median of {args.repeats}):")
    for name, v in res.items():
        print(f"  {name:36s} {v:9.0f}")
    ratio = res["deadleaves"] / res["deadleaves, whole-image reference"]
    print(f"dead leaves / whole-image reference: {ratio:.2f}x (same images)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": s, "batch": n, "images_per_s": res, "deadleaves_speedup": ratio}, f, indent=1)


if __name__ == "__main__":
    main()
