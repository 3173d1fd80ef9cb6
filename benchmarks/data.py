"""Training-clip throughput on K400-like mp4s, per CPU core: our `VideoClipDataset` per decoder x num_samples against
the paper's loader path, measured in the same run.

    python benchmarks/data.py [--videos 4] [--items 8] [--repeats 3] [--decoders pyav,decord,torchcodec] [--json OUT]

The videos are made here (cached under --cache): 10 s, 30 fps, 320 x 428, H.264 (x264 preset medium, crf 23, the
default GOP: keyint 250, as files in the wild), a slow pan and zoom over a photo with a moving square and sensor
grain. The process is pinned to one core (`--core`) and torch to one thread: every number is per core.

The paper's path (its VideoMAE loader; written here from its description, not copied): decord
`VideoReader(path, num_threads=1)`, a uniform random start, 16 indices at stride 4, `get_batch`, the frames as PIL
images (`ref decode`); `ref + crop` adds its GroupMultiScaleCrop (same crop distribution as ours) and a bilinear resize
to 224 per PIL frame, and a uint8 tensor. With S samples the paper's code decodes once and augments S times, so its
cost per clip is (decode + S crops) / S. Ours: a train item of `VideoClipDataset` (decode + multi-scale crop + resize
to 224, uint8 (S, 3, 16, 224, 224)). Also measured: keyframe-aligned starts (`start_sampling=keyframe`), each sample
its own start (`per_sample_start`, the old behaviour), PyAV decoding every frame of the span
(`PyAVReader.skip_unreferenced = False`, the reader before it skipped unreferenced frames) and the same videos
re-encoded by `smile data-reencode` (short side 320 kept, a keyframe every 16 frames), with their size.

Timings are medians over --repeats passes of --items clips; other processes on the machine make them noisy, which is
why every ratio is against the reference measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

FRAMES, STRIDE, SIZE, SCALES = 16, 4, 224, (1.0, 0.875, 0.75, 0.66)


# ------------------------------------------------------------------------------------------------------ videos
def k400_like(path: Path, seed: int, seconds: int = 10, fps: int = 30, height: int = 320, width: int = 428) -> None:
    """A K400-like clip: x264 preset medium, crf 23, default GOP (keyint 250)."""
    import av
    import skimage.data as sd
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    photo = [sd.astronaut, sd.coffee, sd.chelsea, sd.rocket][seed % 4]()
    big = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
    big = F.interpolate(big, size=(2 * height, int(2 * height * photo.shape[1] / photo.shape[0])), mode="bilinear")[0]
    bh, bw = big.shape[1:]
    grain = torch.randn((4, 3, height, width), generator=g) * 3  # (4, 3, H, W), cycled
    n = seconds * fps
    x0 = float(torch.rand((), generator=g)) * (bw - 1.3 * width)
    y0 = float(torch.rand((), generator=g)) * (bh - 1.3 * height)
    vx, vy = (float(torch.rand((), generator=g)) - 0.5) * 3, (float(torch.rand((), generator=g)) - 0.5) * 2
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.thread_count = 1
        s.options = {"preset": "medium", "crf": "23"}
        for t in range(n):
            z = 1.0 + 0.25 * np.sin(2 * np.pi * t / n)
            ch, cw = int(height * z), int(width * z)
            x, y = int(np.clip(x0 + vx * t, 0, bw - cw)), int(np.clip(y0 + vy * t, 0, bh - ch))
            f = F.interpolate(big[None, :, y:y + ch, x:x + cw], size=(height, width), mode="bilinear")[0]
            bx = int((width - 60) * (0.5 + 0.5 * np.sin(t / 23 + seed)))
            by = int((height - 60) * (0.5 + 0.5 * np.cos(t / 31 + seed)))
            f[:, by:by + 60, bx:bx + 60] = torch.tensor([220.0, 40.0, 40.0])[:, None, None]
            frame = (f + grain[t % 4]).clamp(0, 255).byte().permute(1, 2, 0).contiguous().numpy()  # (H, W, 3)
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    os.replace(tmp, path)


def make_videos(cache: Path, count: int, seconds: int = 10) -> list[str]:
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        p = cache / f"k400like_{seconds}s_{i}.mp4"
        if not p.exists():
            k400_like(p, i, seconds=seconds)
        paths.append(str(p))
    return paths


def reencoded(paths: list[str], cache: Path, gop: int) -> list[str]:
    from smile_video.data.reencode import reencode_video

    out = []
    for p in paths:
        dst = cache / f"gop{gop}" / Path(p).name  # the name says the source's length
        if not dst.exists():
            reencode_video(p, dst, short_side=320, gop=gop)
        out.append(str(dst))
    return out


# ------------------------------------------------------------------------------------------------- measuring
def interleaved(loaders: list[dict], items: int, repeats: int) -> None:
    """Time every loader on the same `items` clips per round, round-robin over `repeats` rounds, so that load from
    other processes falls on all of them alike; adds ``seconds`` (one per round) to each."""
    for ld in loaders:
        ld["fn"](0)  # warm-up (imports, first open)
        ld["seconds"] = []
    for r in range(repeats):
        for ld in loaders:
            t0 = time.perf_counter()
            for k in range(items):
                ld["fn"](r * items + k)
            ld["seconds"].append(time.perf_counter() - t0)
        print(f"  round {r + 1}/{repeats} done", flush=True)


def paper_path(paths: list[str], samples: int, crop: bool):
    """The paper's loader path (see the module docstring) for item k -> (S, T, 224, 224, 3) uint8 or PIL frames."""
    import decord
    from PIL import Image

    from smile_video.data.transforms import multiscale_crop_params

    def item(k: int):
        g = torch.Generator().manual_seed(k)
        vr = decord.VideoReader(paths[k % len(paths)], num_threads=1)
        span = (FRAMES - 1) * STRIDE + 1
        start = int(torch.randint(max(len(vr) - span, 0) + 1, (1,), generator=g))
        idx = [min(start + i * STRIDE, len(vr) - 1) for i in range(FRAMES)]
        frames = [Image.fromarray(f).convert("RGB") for f in vr.get_batch(idx).asnumpy()]
        if not crop:
            return frames
        out = []
        for _ in range(samples):
            top, left, ch, cw = multiscale_crop_params(frames[0].height, frames[0].width, SIZE, SCALES, g)
            out.append(np.stack([np.asarray(f.crop((left, top, left + cw, top + ch)).resize((SIZE, SIZE),
                                                                                              Image.BILINEAR))
                                 for f in frames]))
        return torch.from_numpy(np.stack(out))  # (S, T, 224, 224, 3)

    return item


def ours(paths: list[str], decoder: str, samples: int, **kw):
    from smile_video.data.dataset import VideoClipDataset
    from smile_video.data.lists import VideoEntry

    ds = VideoClipDataset([VideoEntry(p, 0) for p in paths], FRAMES, STRIDE, SIZE, train=True, num_samples=samples,
                          crop_scales=SCALES, flip=True, seed=0, decoder=decoder, **kw)
    return lambda k: ds[(k // len(paths), k % len(paths))]


def every_frame(fn):
    """`fn` with PyAV decoding every frame of a clip's span (`PyAVReader.skip_unreferenced` off): the same clips."""
    from smile_video.data.decode import PyAVReader

    def item(k: int):
        PyAVReader.skip_unreferenced = False
        try:
            return fn(k)
        finally:
            PyAVReader.skip_unreferenced = True

    return item


def lead_in(paths: list[str]) -> dict[str, float]:
    """Frames decoded per clip (keyframe before the start to the clip's end) for uniform starts, from the index."""
    from smile_video.data.decode import PyAVReader

    decoded, keys = [], []
    span = (FRAMES - 1) * STRIDE + 1
    for p in paths:
        with PyAVReader(p) as r:
            ks, n = r.key_frames, r.num_frames
        keys.append(len(ks))
        for s in range(n - span + 1):
            k = max(k for k in ks if k <= s)
            decoded.append(s + span - k)
    return {"keyframes_per_video": statistics.mean(keys), "frames_decoded_per_clip": statistics.mean(decoded),
            "frames_spanned_per_clip": span}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10, help="length of each generated video")
    ap.add_argument("--items", type=int, default=8, help="clips (items) per timed pass")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--decoders", default="pyav,decord,torchcodec")
    ap.add_argument("--num-samples", default="1,2,4")
    ap.add_argument("--gop", type=int, default=16, help="keyframe spacing of the re-encoded copy")
    ap.add_argument("--core", type=int, default=None, help="CPU core to pin to (default: the last one allowed)")
    ap.add_argument("--cache", default="/tmp/smile_bench_data")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    allowed, threads = os.sched_getaffinity(0), torch.get_num_threads()
    core = args.core if args.core is not None else max(allowed)
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    try:
        measure(args, core)
    finally:  # `smile bench` runs this in its own process: leave it as it was
        os.sched_setaffinity(0, allowed)
        torch.set_num_threads(threads)


def measure(args: argparse.Namespace, core: int) -> None:
    from smile_video.data.decode import decoder_available

    cache = Path(args.cache)
    t0 = time.perf_counter()
    paths = make_videos(cache, args.videos, args.seconds)
    short = reencoded(paths, cache, args.gop)
    print(f"videos ready in {time.perf_counter() - t0:.0f} s; pinned to core {core}; torch {torch.__version__}")
    decoders = [d for d in args.decoders.split(",") if decoder_available(d)]
    missing = sorted(set(args.decoders.split(",")) - set(decoders))
    if missing:
        print(f"not installed here (skipped): {missing}")
    samples = [int(s) for s in args.num_samples.split(",")]
    loaders: list[dict] = []

    def add(name: str, fn, s: int, files: str = "long GOP", ref: str | int | None = None) -> None:
        loaders.append({"loader": name, "fn": fn, "num_samples": s, "files": files, "ref": ref})

    if decoder_available("decord"):
        add("paper path: decode (ref)", paper_path(paths, 1, crop=False), 1, ref="decode")
        for s in samples:
            add("paper path: decode + crop", paper_path(paths, s, crop=True), s, ref=s)
    for d in decoders:
        for s in samples:
            add(f"ours, {d}", ours(paths, d, s), s)
        add(f"ours, {d}, keyframe starts", ours(paths, d, 1, start_sampling="keyframe"), 1)
        add(f"ours, {d}", ours(short, d, 1), 1, files=f"GOP {args.gop}")
        add(f"ours, {d}", ours(short, d, max(samples)), max(samples), files=f"GOP {args.gop}")
    if "pyav" in decoders:
        add("ours, pyav, every frame decoded", every_frame(ours(paths, "pyav", 1)), 1)
    add(f"ours, {decoders[0]}, per-sample start (old)", ours(paths, decoders[0], max(samples), per_sample_start=True),
        max(samples))
    interleaved(loaders, args.items, args.repeats)
    refs = {ld["ref"]: ld for ld in loaders if ld["ref"] is not None}

    def ratio(ref: dict | None, ld: dict) -> float:
        """Median over rounds of (reference time per clip / this loader's time per clip)."""
        if ref is None:
            return float("nan")
        return statistics.median((rs / ref["num_samples"]) / (ls / ld["num_samples"])
                                 for rs, ls in zip(ref["seconds"], ld["seconds"]))

    rows = []
    for ld in loaders:
        ms = statistics.median(ld["seconds"]) / (args.items * ld["num_samples"]) * 1e3
        rows.append({"loader": ld["loader"], "num_samples": ld["num_samples"], "files": ld["files"],
                     "ms_per_clip": ms, "clips_per_s": 1e3 / ms, "vs_ref_decode": ratio(refs.get("decode"), ld),
                     "vs_paper_same_s": ratio(refs.get(ld["num_samples"]), ld),
                     "seconds_per_round": ld["seconds"]})
    size = {"long_gop_bytes": sum(os.path.getsize(p) for p in paths), "short_gop_bytes": sum(os.path.getsize(p)
                                                                                             for p in short)}
    leads = {"long GOP": lead_in(paths), f"GOP {args.gop}": lead_in(short)}

    print(f"\nmedians of {args.repeats} rounds of {args.items} items; ratios: median of the per-round ratios")
    print("| loader | S | files | ms / clip | clips/s/core | vs ref decode | vs paper path, same S |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['loader']} | {r['num_samples']} | {r['files']} | {r['ms_per_clip']:.1f} | {r['clips_per_s']:.1f} "
              f"| {r['vs_ref_decode']:.2f}x | {r['vs_paper_same_s']:.2f}x |")
    long_mb, short_mb = size["long_gop_bytes"] / 1e6, size["short_gop_bytes"] / 1e6
    print(f"\nsize: long GOP {long_mb:.2f} MB, GOP {args.gop} {short_mb:.2f} MB ({short_mb / long_mb:.2f}x)")
    for k, v in leads.items():
        print(f"lead-in, {k}: {v['keyframes_per_video']:.1f} keyframes per video; a uniform-start clip decodes "
              f"{v['frames_decoded_per_clip']:.0f} frames to use {FRAMES} spread over {v['frames_spanned_per_clip']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "size": size, "lead_in": leads, "core": core,
                                               "items": args.items, "repeats": args.repeats}, indent=1))


if __name__ == "__main__":
    main()
