"""An independent motion check: is a pretrained checkpoint's motion gain general, or tuned to the embedded benchmark?

A labelled motion set generated *differently* from the project's embedded benchmark (`smile_video.eval.benchmark`):
its own generator, numpy + PIL only, none of smile_video's compositor, object bank, trajectories or backgrounds.
Ten classes, each one object doing one motion over a 16-frame clip:

    translate_left, translate_right, translate_up, translate_down, translate_down_right, translate_up_left,
    rotate_clockwise, rotate_counterclockwise (90 degrees over the clip), scale_up, scale_down (factor 2)

Every clip draws its own speed around the nominal one (translation 0.015-0.03 of the frame side per frame, rotation
67.5-112.5 degrees, scale factor 2^0.75-2^1.25), so no single displacement separates the classes. The object is a
random filled shape with a 2-colour stripe or checker texture (so rotation is visible), 20-40% of the frame side
(scaling clips: at mid-clip), over a static, smooth background (a random linear colour gradient plus blurred
low-frequency noise), different for every clip. Train and val clips show random polygons (3-8 vertices, convex-ish)
and ellipses; test clips show stars, a shape family never seen in training.

    python benchmarks/motion_check.py generate OUT [--size 112] [--seed 0] [--per-class 32 16 16]
    python benchmarks/motion_check.py evaluate OUT --checkpoints NAME=PATH ... [--random-init] [--seeds 0 1 2]
                                                  [--finetune-epochs 60]

`generate` writes OUT/videos/<split>/<class>_<i>.mp4 (H.264, yuv420p, crf 18), VideoMAE lists OUT/train.csv,
OUT/val.csv, OUT/test.csv (`videos/train/translate_left_0000.mp4 0`), OUT/classes.json (name -> id, a label map
`smile data-check --label-map` reads), OUT/meta.jsonl (every clip's drawn parameters) and OUT/set.json. The same
--seed gives the same frames.

`evaluate` runs the fidelity study's protocol (`smile_video.eval.study`, fixed, never tuned on these scores) on each
checkpoint and, with --random-init, on the study's architecture at random init (seeded like the study: probe.seed /
finetune.seed): linear probe and attentive probe (`PROBE_RECIPE`: three lrs, 60 epochs, lr and epoch chosen on val,
test top-1 reported), kNN (k=10) on test, and full finetuning (`FINETUNE_RECIPE`, last epoch, test top-1). It writes
OUT/results.json (after every run; a rerun reuses finished runs with the same checkpoint and epochs) and prints one
markdown table, mean ± sample std over seeds. Chance is 10%.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("translate_left", "translate_right", "translate_up", "translate_down", "translate_down_right",
           "translate_up_left", "rotate_clockwise", "rotate_counterclockwise", "scale_up", "scale_down")
_DIRECTIONS = {"translate_left": (-1.0, 0.0), "translate_right": (1.0, 0.0), "translate_up": (0.0, -1.0),
               "translate_down": (0.0, 1.0), "translate_down_right": (1.0, 1.0), "translate_up_left": (-1.0, -1.0)}
SPLITS = ("train", "val", "test")
TRAIN_KINDS = ("polygon", "ellipse")  # train and val objects
TEST_KINDS = ("star",)  # test objects: a held-out shape family
NUM_FRAMES = 16
GENERATOR_VERSION = 1
FPS = 25

SPEED = (0.015, 0.03)  # translation, fraction of the frame side per frame
ROTATION = (0.75 * 90.0, 1.25 * 90.0)  # degrees over the clip
SCALE_LOG2 = (0.75, 1.25)  # log2 of the scale factor over the clip
DIAMETER = (0.2, 0.4)  # object extent (twice its largest radius), fraction of the frame side
_MARGIN = 0.02  # objects stay this far (fraction of the side) inside the frame
_SUPER = 2  # frames are rendered at twice the size and averaged down (anti-aliasing)


# ----------------------------------------------------------------------------------------------------------- shapes

def make_shape(rng: np.random.Generator, kind: str) -> np.ndarray:
    """A closed outline ``(N, 2)`` in unit coordinates: its area centroid at the origin, its largest radius 1.

    polygon: 3-8 vertices at roughly even angles, radii 0.7-1 (convex-ish, never star-like); ellipse: axis ratio
    0.45-0.8 (never a circle, so rotation shows in the outline too); star: 4-8 points, inner radius 0.3-0.5 of the
    outer one."""
    if kind == "polygon":
        n = int(rng.integers(3, 9))
        ang = 2 * np.pi * (np.arange(n) + rng.uniform(-0.3, 0.3, n)) / n
        rad = rng.uniform(0.7, 1.0, n)
    elif kind == "ellipse":
        n = 96
        ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
        b = rng.uniform(0.45, 0.8)
        rad = b / np.sqrt((b * np.cos(ang)) ** 2 + np.sin(ang) ** 2)  # polar form of an ellipse with axes 1, b
    elif kind == "star":
        p = int(rng.integers(4, 9))
        inner = rng.uniform(0.3, 0.5)
        ang = np.pi * np.arange(2 * p) / p
        rad = np.where(np.arange(2 * p) % 2 == 0, 1.0, inner) * rng.uniform(0.95, 1.05, 2 * p)
    else:
        raise ValueError(f"unknown shape kind {kind!r}; expected polygon, ellipse or star")
    ang = ang + rng.uniform(0, 2 * np.pi)
    pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
    pts = pts - _polygon_centroid(pts)
    return pts / np.sqrt((pts ** 2).sum(1)).max()


def _polygon_centroid(pts: np.ndarray) -> np.ndarray:
    x, y = pts[:, 0], pts[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    return np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6 * area)


def _random_colour(rng: np.random.Generator, away_from: np.ndarray, min_dist: float) -> np.ndarray:
    """A random RGB colour at least `min_dist` from `away_from` (the farthest of 32 draws when none is)."""
    best, best_d = None, -1.0
    for _ in range(32):
        c = rng.uniform(0, 255, 3)
        d = float(np.linalg.norm(c - away_from))
        if d >= min_dist:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


def make_sprite(rng: np.random.Generator, outline: np.ndarray, radius_px: int, bg_mean: np.ndarray
                ) -> tuple[Image.Image, dict[str, Any]]:
    """The textured object as an RGBA image of side 2 * radius_px + 8: the outline (unit radius -> radius_px) filled
    with a 2-colour stripe or checker texture in the object's own coordinates (it turns with the object)."""
    side = 2 * radius_px + 8
    hi = 2 * side  # drawn at twice the size, then box-averaged: a smooth edge
    c = hi / 2
    mask = Image.new("L", (hi, hi), 0)
    ImageDraw.Draw(mask).polygon([(c + 2 * radius_px * x, c + 2 * radius_px * y) for x, y in outline], fill=255)
    mask = mask.reduce(2)
    c1 = _random_colour(rng, bg_mean, 110.0)
    c2 = _random_colour(rng, c1, 90.0)
    texture = str(rng.choice(["stripes", "checker"]))
    period = rng.uniform(0.25, 0.5)  # unit coordinates (the object is 2 across): 4-8 bands
    phi = rng.uniform(0, np.pi)
    phase = rng.uniform(0, 1, 2)
    u = (np.arange(hi) + 0.5 - c) / (2 * radius_px)
    x, y = np.meshgrid(u, u)
    a = (x * np.cos(phi) + y * np.sin(phi)) / period + phase[0]
    if texture == "stripes":
        sel = np.floor(a) % 2 == 0
    else:
        b = (-x * np.sin(phi) + y * np.cos(phi)) / period + phase[1]
        sel = (np.floor(a) + np.floor(b)) % 2 == 0
    rgb = np.where(sel[..., None], c1, c2).astype(np.float32)
    rgb = rgb.reshape(side, 2, side, 2, 3).mean((1, 3))
    sprite = Image.fromarray(np.round(rgb).astype(np.uint8), "RGB").convert("RGBA")
    sprite.putalpha(mask)
    info = {"texture": texture, "colours": [np.round(c1).astype(int).tolist(), np.round(c2).astype(int).tolist()],
            "period": float(period)}
    return sprite, info


# ------------------------------------------------------------------------------------------------------- background

def make_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A static smooth background ``(size, size, 3)`` float32 in [0, 255]: a linear gradient between two random colours
    along a random direction, plus blurred low-frequency noise."""
    ca, cb = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    theta = rng.uniform(0, 2 * np.pi)
    u = (np.arange(size) + 0.5) / size - 0.5
    x, y = np.meshgrid(u, u)
    g = x * np.cos(theta) + y * np.sin(theta)
    g = (g - g.min()) / max(float(g.max() - g.min()), 1e-6)
    bg = ca + (cb - ca) * g[..., None]
    cells = int(rng.integers(3, 7))
    noise = np.clip(128 + 48 * rng.standard_normal((cells, cells, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(noise, "RGB").resize((size, size), Image.BICUBIC)
    img = img.filter(ImageFilter.GaussianBlur(radius=size / 16))
    amp = rng.uniform(10, 30)
    bg = bg + amp * (np.asarray(img, np.float32) - 128) / 48
    return np.clip(bg, 0, 255).astype(np.float32)


# ------------------------------------------------------------------------------------------------------------- clips

@dataclass
class Clip:
    frames: np.ndarray  # (T, S, S, 3) uint8
    alpha: np.ndarray  # (T, S, S) float32 in [0, 1]: the object's coverage of each pixel
    meta: dict[str, Any]


def motion_path(rng: np.random.Generator, motion: str, size: int, num_frames: int = NUM_FRAMES
                ) -> dict[str, np.ndarray | float]:
    """Per-frame centre ``(T, 2)`` (x, y in pixels, y down), angle ``(T,)`` (radians; increasing = clockwise on
    screen) and scale ``(T,)`` (diameter multiplier) of one clip, plus the drawn diameter (px) and speed."""
    if motion not in CLASSES:
        raise ValueError(f"unknown motion {motion!r}; expected one of {CLASSES}")
    t = np.arange(num_frames) / (num_frames - 1)  # 0 .. 1 over the clip
    diameter = rng.uniform(*DIAMETER) * size
    angle0 = rng.uniform(0, 2 * np.pi)
    offset = np.zeros((num_frames, 2))
    angle = np.full(num_frames, angle0)
    scale = np.ones(num_frames)
    if motion in _DIRECTIONS:
        d = np.array(_DIRECTIONS[motion]) / np.linalg.norm(_DIRECTIONS[motion])
        speed = rng.uniform(*SPEED) * size  # px per frame
        offset = (t * (num_frames - 1) * speed)[:, None] * d[None]
    elif motion.startswith("rotate"):
        speed = math.radians(rng.uniform(*ROTATION))  # radians over the clip
        angle = angle0 + (1 if motion == "rotate_clockwise" else -1) * speed * t
    else:
        speed = rng.uniform(*SCALE_LOG2)  # log2 of the factor over the clip
        scale = 2.0 ** ((1 if motion == "scale_up" else -1) * speed * (t - 0.5))
    radius = diameter * scale / 2
    m = _MARGIN * size
    lo = (radius[:, None] + m - offset).max(0)  # the centre at frame 0 keeps every frame's object inside
    hi = (size - radius[:, None] - m - offset).min(0)
    start = np.where(hi > lo, lo + rng.uniform(0, 1, 2) * np.maximum(hi - lo, 0), (lo + hi) / 2)
    return {"centre": start[None] + offset, "angle": angle, "scale": scale, "diameter": float(diameter),
            "speed": float(speed)}


def render_clip(rng: np.random.Generator, motion: str, kinds: tuple[str, ...] = TRAIN_KINDS, size: int = 112,
                num_frames: int = NUM_FRAMES) -> Clip:
    """One clip of `motion`: a random object of a random kind from `kinds` over a random static background. Every
    random draw comes from `rng`; the same generator state gives the same clip."""
    if size < 16 or size % 2:
        raise ValueError(f"size must be even and >= 16 (yuv420p), got {size}")
    kind = str(rng.choice(list(kinds)))
    outline = make_shape(rng, kind)
    path = motion_path(rng, motion, size, num_frames)
    big = size * _SUPER
    bg = make_background(rng, big)
    radius_px = int(math.ceil(_SUPER * path["diameter"] * float(path["scale"].max()) / 2))
    sprite, tex = make_sprite(rng, outline, radius_px, bg.reshape(-1, 3).mean(0))
    sc = sprite.size[0] / 2
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    alpha = np.empty((num_frames, size, size), np.float32)
    for i in range(num_frames):
        # object diameter at frame i in supersampled px, over the sprite's (2 * radius_px): the sprite's scale
        k = _SUPER * path["diameter"] * path["scale"][i] / (2 * radius_px)
        cx, cy = _SUPER * path["centre"][i]
        ca, sa = math.cos(path["angle"][i]) / k, math.sin(path["angle"][i]) / k
        # output pixel (X, Y) -> sprite pixel: R(-angle) (p - centre) / k + sprite centre
        data = (ca, sa, sc - ca * cx - sa * cy, -sa, ca, sc + sa * cx - ca * cy)
        layer = np.asarray(sprite.transform((big, big), Image.AFFINE, data, resample=Image.BILINEAR), np.float32)
        a = layer[..., 3:] / 255
        out = bg * (1 - a) + layer[..., :3] * a
        frames[i] = np.round(out.reshape(size, _SUPER, size, _SUPER, 3).mean((1, 3))).astype(np.uint8)
        alpha[i] = a[..., 0].reshape(size, _SUPER, size, _SUPER).mean((1, 3))
    meta = {"motion": motion, "shape": kind, "vertices": int(len(outline)) if kind != "ellipse" else 0,
            "diameter": path["diameter"] / size, "speed": path["speed"], "angle0_deg": math.degrees(path["angle"][0]),
            "start": (path["centre"][0] / size).round(4).tolist(), "end": (path["centre"][-1] / size).round(4).tolist(),
            **tex}
    return Clip(frames, alpha, meta)


def clip_rng(seed: int, split: str, label: int, index: int) -> np.random.Generator:
    """The generator of one clip: independent of how many clips the other classes and splits have."""
    return np.random.default_rng([seed, SPLITS.index(split), label, index])


# ------------------------------------------------------------------------------------------------------------ output

def _codec() -> str:
    import av

    for name in ("libx264", "h264"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises different errors for unknown codecs across versions
            continue
    return "mpeg4"


def write_mp4(path: Path, frames: np.ndarray, crf: int = 18, fps: int = FPS) -> str:
    """``(T, H, W, 3)`` uint8 RGB -> an H.264 mp4 (yuv420p, CRF `crf`; mpeg4 at a high bit rate when this PyAV has no
    H.264 encoder). One encoder thread: the same frames give the same bytes. Returns the codec used."""
    import av

    codec = _codec()
    path.parent.mkdir(parents=True, exist_ok=True)
    _, h, w, _ = frames.shape
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        if codec == "mpeg4":
            stream.bit_rate = w * h * fps * 2
        else:
            stream.options = {"crf": str(crf), "preset": "medium"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return codec


_WRITTEN = ("videos", "train.csv", "val.csv", "test.csv", "classes.json", "meta.jsonl", "set.json", "eval",
            "results.json")


def generate(out: str | Path, size: int = 112, seed: int = 0, per_class: tuple[int, int, int] = (32, 16, 16),
             overwrite: bool = False, log=print) -> dict[str, Any]:
    """Write the set to `out` (see the module docstring); returns set.json's content. A folder that already holds a
    set is refused unless `overwrite` (which removes the set, its evaluations and results.json first)."""
    out = Path(out)
    if len(per_class) != 3 or min(per_class) < 1:
        raise ValueError(f"per_class must be three counts >= 1 (train, val, test), got {per_class}")
    if out.exists() and any((out / n).exists() for n in _WRITTEN):
        if not overwrite:
            raise FileExistsError(f"{out} already holds a motion-check set; pass --overwrite or another folder")
        for n in _WRITTEN:
            p = out / n
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    codec = ""
    with open(out / "meta.jsonl", "w") as meta:
        for split, count in zip(SPLITS, per_class):
            kinds = TEST_KINDS if split == "test" else TRAIN_KINDS
            lines = []
            for i in range(count):  # interleave classes, so a list's head holds every class
                for label, motion in enumerate(CLASSES):
                    clip = render_clip(clip_rng(seed, split, label, i), motion, kinds, size)
                    rel = f"videos/{split}/{motion}_{i:04d}.mp4"
                    codec = write_mp4(out / rel, clip.frames)
                    lines.append(f"{rel} {label}")
                    meta.write(json.dumps({"path": rel, "split": split, "label": label, **clip.meta}) + "\n")
            (out / f"{split}.csv").write_text("\n".join(lines) + "\n")
            log(f"[motion_check] {split}: {len(lines)} clips ({time.time() - start:.0f} s)")
    (out / "classes.json").write_text(json.dumps({c: i for i, c in enumerate(CLASSES)}, indent=1) + "\n")
    info = {"generator_version": GENERATOR_VERSION, "seed": seed, "size": size, "num_frames": NUM_FRAMES,
            "per_class": list(per_class), "classes": list(CLASSES), "train_val_shapes": list(TRAIN_KINDS),
            "test_shapes": list(TEST_KINDS), "codec": codec, "fps": FPS}
    (out / "set.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


# -------------------------------------------------------------------------------------------------------- evaluation

METRICS = (("linear", "linear probe"), ("attentive", "attentive probe"), ("knn", "kNN"), ("finetune", "finetune"))
RANDOM_INIT = "random init"


def evaluate_encoder(checkpoint: str | None, out: Path, eval_dir: Path, seed: int, finetune_epochs: int,
                     quiet: bool = True) -> dict[str, Any]:
    """The study's protocol (`smile_video.eval.study.evaluate_checkpoint`'s calls, motion only, no statistics) on
    one encoder: {"linear", "attentive", "knn", "finetune"} test top-1 and the val top-1 of each ("_val")."""
    from smile_video.config import FinetuneJob, ProbeJob, load_config
    from smile_video.eval.finetune import finetune as run_finetune
    from smile_video.eval.probe_job import run_knn, run_probe
    from smile_video.eval.study import FINETUNE_RECIPE, PROBE_RECIPE

    q = f"run.quiet={str(quiet).lower()}"
    lists = [f"probe.train_list={out / 'train.csv'}", f"probe.val_list={out / 'val.csv'}",
             f"probe.test_list={out / 'test.csv'}", f"probe.data_root={out}"]
    # probe and kNN are redone on a rerun (their features are cached): their run directories are replaced
    ov = [*PROBE_RECIPE, *lists, f"probe.seed={seed}", f"run.out_dir={eval_dir / 'probe'}",
          f"probe.cache_dir={eval_dir / 'features'}", q, "run.overwrite=true"]
    probe = run_probe(load_config(ProbeJob, overrides=ov), checkpoint)
    att = run_probe(load_config(ProbeJob, overrides=[*ov, "probe.head=attentive",
                                                      f"run.out_dir={eval_dir / 'attentive'}"]), checkpoint)
    knn = run_knn(load_config(ProbeJob, overrides=[*ov, f"run.out_dir={eval_dir / 'knn'}"]), checkpoint)
    fl = [s.replace("probe.", "finetune.") for s in lists]
    ft = run_finetune(load_config(FinetuneJob, overrides=[
        *FINETUNE_RECIPE, *fl, f"finetune.epochs={finetune_epochs}", f"finetune.seed={seed}",
        f"run.out_dir={eval_dir / f'finetune_{finetune_epochs}ep'}", "run.resume=auto", q]), checkpoint)
    return {"linear": probe["best"]["top1"], "linear_val": probe["selected"]["val"]["top1"],
            "attentive": att["best"]["top1"], "attentive_val": att["selected"]["val"]["top1"],
            "knn": knn["top1"], "finetune": ft["test"]["top1"], "finetune_val": ft["final"]["top1"]}


def _check_architecture(checkpoints: dict[str, str | None], log=print) -> None:
    """The random init is the study's architecture (PROBE_RECIPE's model); say so when a checkpoint's differs."""
    from smile_video.checkpoint import read_config
    from smile_video.config import ProbeJob, load_config
    from smile_video.eval.study import PROBE_RECIPE

    ref = load_config(ProbeJob, overrides=PROBE_RECIPE).model
    keys = ("img_size", "num_frames", "patch_size", "tubelet_size", "embed_dim", "depth", "num_heads", "mlp_ratio")
    for name, ckpt in checkpoints.items():
        if ckpt is None:
            continue
        cfg = read_config(ckpt)
        diff = [f"{k} {getattr(cfg, k)} vs {getattr(ref, k)}" for k in keys if getattr(cfg, k) != getattr(ref, k)]
        if diff:
            log(f"[motion_check] warning: {name}'s architecture differs from the random init's (the study's "
                f"recipe): {', '.join(diff)}")


def evaluate(out: str | Path, checkpoints: dict[str, str | None], seeds: list[int], finetune_epochs: int = 60,
             quiet: bool = True, log=print) -> dict[str, Any]:
    """Every (encoder, seed): `evaluate_encoder`; results.json written after each run. `checkpoints`: name -> path,
    None = random init. A run already in results.json with the same checkpoint, epochs and set is reused."""
    from smile_video.eval.study import FINETUNE_RECIPE, PROBE_RECIPE

    out = Path(out)
    set_info = json.loads((out / "set.json").read_text())
    if RANDOM_INIT in checkpoints:
        _check_architecture(checkpoints, log)
    path = out / "results.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    same_set = old.get("set") == set_info
    results: dict[str, Any] = {"set": set_info, "protocol": {
        "probe": PROBE_RECIPE, "finetune": FINETUNE_RECIPE, "finetune_epochs": finetune_epochs,
        "reported": "test top-1 (%): probes chosen on val, kNN k=10 on test, finetuning's last epoch"},
        "runs": dict(old.get("runs", {})) if same_set else {}}
    for seed in seeds:
        for name, ckpt in checkpoints.items():
            key = f"{name}|{seed}"
            prev = results["runs"].get(key)
            if prev and prev.get("checkpoint") == ckpt and prev.get("finetune_epochs") == finetune_epochs:
                log(f"[motion_check] {name}, seed {seed}: reused from results.json")
                continue
            log(f"[motion_check] {name}, seed {seed}")
            start = time.time()
            slug = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
            r = evaluate_encoder(ckpt, out, out / "eval" / slug / f"seed{seed}", seed, finetune_epochs, quiet)
            results["runs"][key] = {"checkpoint": ckpt, "seed": seed, "finetune_epochs": finetune_epochs, **r,
                                    "minutes": (time.time() - start) / 60}
            path.write_text(json.dumps(results, indent=1))
    path.write_text(json.dumps(results, indent=1))
    return results


def results_table(results: dict[str, Any], names: list[str]) -> list[str]:
    """Markdown: one row per encoder, test top-1 (%) per protocol, mean ± sample std over seeds."""
    from smile_video.eval.study import mean_std

    lines = ["| encoder | " + " | ".join(f"{label}, test top-1" for _, label in METRICS) + " | seeds |",
             "|---|" + "---|" * (len(METRICS) + 1)]
    for name in names:
        rs = [r for k, r in results["runs"].items() if k.rsplit("|", 1)[0] == name]
        cells = []
        for key, _ in METRICS:
            vals = [r[key] for r in rs if key in r]
            if not vals:
                cells.append("-")
                continue
            m, s = mean_std(vals)
            cells.append(f"{m:.1f} ± {s:.1f}" if len(vals) > 1 else f"{m:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(rs)} |")
    return lines


# --------------------------------------------------------------------------------------------------------------- CLI

def _parse_checkpoints(items: list[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"motion_check: --checkpoints takes NAME=PATH, got {item!r}")
        if name in found or name == RANDOM_INIT:
            raise SystemExit(f"motion_check: checkpoint name {name!r} is used twice or reserved")
        if not Path(path).exists():
            raise SystemExit(f"motion_check: checkpoint {path!r} ({name}) does not exist")
        found[name] = path
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write the labelled motion set")
    g.add_argument("out")
    g.add_argument("--size", type=int, default=112, help="frame side in pixels (even)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--per-class", type=int, nargs=3, default=[32, 16, 16], metavar=("TRAIN", "VAL", "TEST"))
    g.add_argument("--overwrite", action="store_true", help="replace a set (and its results) already in OUT")
    e = sub.add_parser("evaluate", help="probe, kNN and finetune checkpoints on a generated set")
    e.add_argument("out")
    e.add_argument("--checkpoints", nargs="*", default=[], metavar="NAME=PATH")
    e.add_argument("--random-init", action="store_true", help="also the study's architecture at random init")
    e.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    e.add_argument("--finetune-epochs", type=int, default=60)
    e.add_argument("--verbose", action="store_true", help="the jobs' progress bars and messages")
    args = ap.parse_args(argv)
    if args.cmd == "generate":
        start = time.time()
        try:
            info = generate(args.out, args.size, args.seed, tuple(args.per_class), args.overwrite)
        except (FileExistsError, ValueError) as err:
            raise SystemExit(f"motion_check: {err}") from None
        print(f"[motion_check] wrote {sum(info['per_class']) * len(CLASSES)} clips ({info['size']} px, seed "
              f"{info['seed']}, {info['codec']}) to {args.out} in {time.time() - start:.0f} s")
        return 0
    if not (Path(args.out) / "set.json").is_file():
        raise SystemExit(f"motion_check: {args.out} holds no set (run `generate` first)")
    checkpoints = _parse_checkpoints(args.checkpoints)
    if args.random_init:
        checkpoints[RANDOM_INIT] = None
    if not checkpoints:
        raise SystemExit("motion_check: nothing to evaluate: give --checkpoints NAME=PATH and/or --random-init")
    start = time.time()
    results = evaluate(args.out, checkpoints, args.seeds, args.finetune_epochs, quiet=not args.verbose)
    epochs = f"{args.finetune_epochs} epoch{'s' if args.finetune_epochs != 1 else ''}"
    print(f"\nIndependent motion check ({args.out}; seeds {args.seeds}; finetuning {epochs}; chance 10%; "
          f"{(time.time() - start) / 60:.1f} min)\n")
    print("\n".join(results_table(results, list(checkpoints))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
