"""Where the time of CUDA compositing goes, and the Triton kernel's launch shape: a breakdown of one `composite`
call (parameter checks, `plan_windows` on the host and its copy to the device, the kernel) and a sweep over the
kernel's chunk size, warps per program and programs per launch, at a ViT-B pretraining batch (batch 32,
16 x 224 x 224, 2 objects, the default bank).

    python benchmarks/motion_sweep.py --json sweep.json

Medians over `--repeats` timed calls after a warm-up, CUDA-synchronised. The sweep found no launch shape clearly
better than the defaults of `triton_kernel` (BLOCK, NUM_WARPS, _TARGET_PROGRAMS) on an H100 (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import torch

from smile_video.config import MotionConfig
from smile_video.motion import atlas_size_for, composite, sample_motion, triton_kernel
from smile_video.motion.windows import plan_windows
from smile_video.objects import default_bank


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _median_ms(fn, repeats: int) -> float:
    fn()
    _sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--step", type=int, default=32, help="window rounding (composite uses 32 on a GPU)")
    p.add_argument("--device", default="cuda", help="cuda, or cpu under TRITON_INTERPRET=1 (a smoke test)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    device = torch.device(args.device)
    if not triton_kernel.available() or (device.type == "cuda") != torch.cuda.is_available():
        raise SystemExit("motion_sweep: needs triton and CUDA (or --device cpu with TRITON_INTERPRET=1)")
    cfg = MotionConfig()
    bank = default_bank("pretrain")
    B, T, S = args.batch, 16, args.size
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (B, 3, T, S, S), dtype=torch.uint8, generator=g).to(device)
    params = sample_motion(B, T, S, S, len(bank), cfg, g).to(device)
    A = atlas_size_for(cfg, S, S, bank.max_side)
    atlas = bank.atlas(A, device)
    plan = plan_windows(params, A, S, S, step=args.step)
    work = video.clone()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu (Triton interpreter)"
    res: dict[str, object] = {"device": name, "batch": B, "windows": len(plan),
                              "window_pixels": int(plan.alpha_size), "triton": __import__("triton").__version__}
    res["composite_ms"] = _median_ms(lambda: composite(work, atlas, params, inplace=True, backend="triton"),
                                     args.repeats)
    res["plan_ms"] = _median_ms(lambda: plan_windows(params.to("cpu"), A, S, S, step=args.step).to(device),
                                args.repeats)
    res["plan_on_device_ms"] = _median_ms(lambda: plan_windows(params, A, S, S, step=args.step), args.repeats)
    res["kernel_ms"] = _median_ms(lambda: triton_kernel.blend_windows(work, atlas, plan), args.repeats)
    gen = torch.Generator(device=device).manual_seed(1)
    res["sample_ms"] = _median_ms(lambda: sample_motion(B, T, S, S, len(bank), cfg, gen, device=device),
                                  args.repeats)
    print(f"{res['device']}: {len(plan)} windows, {plan.alpha_size / 1e6:.1f} M window pixels; composite "
          f"{res['composite_ms']:.3f} ms ({B / res['composite_ms'] * 1e3:.0f} clips/s) = plan {res['plan_ms']:.3f} "
          f"+ kernel {res['kernel_ms']:.3f} + checks; sample_motion {res['sample_ms']:.3f} ms; the plan made on the "
          f"device instead of the host {res['plan_on_device_ms']:.3f} ms")
    defaults = (triton_kernel.BLOCK, triton_kernel.NUM_WARPS, triton_kernel._TARGET_PROGRAMS)
    sweep = []
    try:
        for block, warps, target in itertools.product((256, 512, 1024), (2, 4, 8), (4096, 8192, 32768)):
            if block < 32 * warps:
                continue
            triton_kernel.BLOCK, triton_kernel.NUM_WARPS, triton_kernel._TARGET_PROGRAMS = block, warps, target
            ms = _median_ms(lambda: triton_kernel.blend_windows(work, atlas, plan), args.repeats)
            sweep.append({"block": block, "warps": warps, "programs": target, "kernel_ms": ms})
            print(f"BLOCK {block:5d} warps {warps} programs {target:6d}: kernel {ms:.3f} ms")
    finally:
        triton_kernel.BLOCK, triton_kernel.NUM_WARPS, triton_kernel._TARGET_PROGRAMS = defaults
    res["sweep"] = sweep
    best = min(sweep, key=lambda r: r["kernel_ms"])
    print(f"best: {best}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
