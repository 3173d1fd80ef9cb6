"""The embedded benchmark: two small video classification tasks, generated with no download, written as mp4.

``generate_benchmark(root, spec)`` writes, for each task (``motion``, ``appearance``; see `benchmark_tasks`)::

    root/<task>/{train,val,test}/<class>_<i>.mp4
    root/<task>/train.csv, val.csv, test.csv  VideoMAE lists: "<split>/<file>.mp4 <label>", relative to root/<task>
    root/<task>/classes.txt                   one class name a line (line index = label); labels.json {name: id}
    root/<task>/train_meta.jsonl, ...         per clip: path, label, the bank names of its objects
    root/spec.json                            the spec and the object pools, written last: the benchmark is complete

so probing runs through the same list reader and decoder as Kinetics (paths relative to the list's own folder, the
reader's default; ``TaskLists.root`` is that folder). Objects come from the
held-out split of the default bank only, divided into two disjoint pools (`object_pools`): train and val clips show
pool A objects, test clips pool B objects, so a probe chosen on val is scored on objects it never saw.
Backgrounds are static random crops of the bundled still photos. The same spec gives the same decoded frames: all
randomness comes from generators seeded by ``spec.seed``.

Run ``python -m smile_video.eval.benchmark OUT`` to write the default benchmark to OUT.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..motion import MotionParams, composite, sample_motion
from ..objects import ObjectBank, default_bank
from ..runlog import atomic_write_text
from .benchmark_tasks import (
    MOTION_CLASSES,
    appearance_families,
    motion_class_params,
    object_pools,
    rotation_symmetry,
    sample_anchors,
    wrap_copies,
)

__all__ = ["BenchmarkSpec", "TaskLists", "generate_benchmark", "render_motion_task", "render_appearance_task",
           "still_backgrounds", "heldout_bank", "benchmark_pools", "GENERATOR_VERSION", "TASKS", "SPLITS"]

# bump when the generated files change for the same spec (2: the held-out test split; 3: list paths relative to the
# list's folder)
GENERATOR_VERSION = 3
TASKS = ("motion", "appearance")
SPLITS = ("train", "val", "test")
_SYMMETRY_ANGLE = 30.0  # degrees; objects that barely change under this rotation are left out of the motion task
_SYMMETRY_MIN = 0.06  # relative change below which an object counts as rotation-invariant (discs, rings)
_CHUNK = 32  # clips rendered at once (does not change the output)

Progress = Callable[[str, int, int], None]  # (task, clips written, clips in the task)


@dataclass
class BenchmarkSpec:
    """What to generate. Fractions are of the frame side; clip-long quantities are over the whole clip."""

    num_frames: int = 16
    size: int = 64  # frame side in pixels (even: mp4 is yuv420)
    train_per_class: int = 40
    val_per_class: int = 20
    test_per_class: int = 20  # clips of the held-out test objects (pool B)
    test_fraction: float = 1 / 3  # share of each object family that goes to the test pool (`object_pools`)
    seed: int = 0
    fps: float = 8.0
    quality: int = 18  # x264 CRF (lower = closer to the rendered frames)
    object_size: tuple[float, float] = (0.25, 0.4)  # base side of an object's cell, uniform in this range
    num_objects: int = 2  # motion task: objects per clip, all moving the class's way
    motion_classes: tuple[str, ...] = tuple(MOTION_CLASSES)
    travel: float = 0.5  # translating classes move this far over the clip
    rotation: float = 180.0  # rotating classes turn this many degrees over the clip
    scale_ratio: float = 2.0  # growing classes end this many times larger than they start (shrinking: smaller)
    appearance_classes: int = 8  # the largest object families of the held-out bank
    appearance_min_objects: int = 5  # a family needs this many held-out objects to be a class (>= 3: 2 go to test)
    # MotionConfig overrides for the appearance task's random motion (the sizes come from object_size); scales
    # narrower than pretraining's [0.5, 1.5] keep the object large enough to be recognised at 64 px
    appearance_motion: dict = field(default_factory=lambda: {"scale_min": 0.75, "scale_max": 1.25})
    # What the objects move over: photos (the benchmark) | noise (one uniform-noise image per clip, static: a
    # diagnostic of whether a noise-pretrained student reads motion in its own domain, docs/fidelity.md section 8)
    background: str = "photos"

    def validate(self) -> None:
        if self.background not in BENCHMARK_BACKGROUNDS:
            raise ValueError(f"BenchmarkSpec.background must be one of {BENCHMARK_BACKGROUNDS}, "
                             f"got {self.background!r}")
        if self.size < 16 or self.size % 2:
            raise ValueError(f"BenchmarkSpec.size must be even and >= 16 (mp4 is yuv420), got {self.size}")
        if self.num_frames < 2:
            raise ValueError(f"BenchmarkSpec.num_frames must be >= 2 to show motion, got {self.num_frames}")
        if min(self.train_per_class, self.val_per_class, self.test_per_class) < 1:
            raise ValueError("BenchmarkSpec.train_per_class, val_per_class and test_per_class must be >= 1")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"BenchmarkSpec.test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.appearance_min_objects < 3:
            raise ValueError("BenchmarkSpec.appearance_min_objects must be >= 3 (a class needs 2 test objects and "
                             f"1 train / val object), got {self.appearance_min_objects}")
        if not 0 < self.object_size[0] <= self.object_size[1]:
            raise ValueError(f"BenchmarkSpec.object_size must be 0 < low <= high, got {self.object_size}")
        bad = [c for c in self.motion_classes if c not in MOTION_CLASSES]
        if bad or len(self.motion_classes) < 2 or len(set(self.motion_classes)) != len(self.motion_classes):
            raise ValueError(f"BenchmarkSpec.motion_classes: need >= 2 distinct names from {list(MOTION_CLASSES)}, "
                             f"got {list(self.motion_classes)}")
        if self.num_objects < 1 or self.scale_ratio <= 0 or self.appearance_classes < 2:
            raise ValueError("BenchmarkSpec: num_objects >= 1, scale_ratio > 0 and appearance_classes >= 2 needed")
        from ..config import MotionConfig

        allowed = {f.name for f in dataclasses.fields(MotionConfig)} - {"num_objects", "size_min", "size_max",
                                                                          "enabled", "bank", "device"}
        bad = sorted(set(self.appearance_motion) - allowed)
        if bad:
            raise ValueError(f"BenchmarkSpec.appearance_motion: unknown or fixed keys {bad}; "
                             f"allowed: {sorted(allowed)}")

    def per_class(self, split: str) -> int:
        """Clips per class of `split` (train, val or test)."""
        return {"train": self.train_per_class, "val": self.val_per_class, "test": self.test_per_class}[split]

    def to_dict(self) -> dict:
        d = json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists, as spec.json holds them
        if d["background"] == "photos":  # the benchmark's spec.json stays as it was before the diagnostic option
            del d["background"]
        return d


@dataclass
class TaskLists:
    """One generated task: its train, val and test lists (entries relative to the task folder), class names.

    train and val show the pool A objects, test the disjoint pool B (`object_pools`): choose on val, report on test.
    """

    train: Path
    val: Path
    test: Path
    classes: list[str]
    root: Path  # the task folder (<benchmark root>/<task>): the folder the lists' paths are relative to


# -------------------------------------------------------------------------------------------------------------
def heldout_bank() -> ObjectBank:
    """The held-out split of the default object bank (never the pretraining objects)."""
    return default_bank("heldout")


def benchmark_pools(spec: BenchmarkSpec, bank: ObjectBank) -> tuple[list[int], list[int]]:
    """The bank rows of pool A (train and val clips) and pool B (test clips): `object_pools` of the bank's names
    and categories with spec.test_fraction and spec.seed. Disjoint, sorted, together every row once."""
    categories = [bank.categories[int(i)] for i in bank.labels]
    return object_pools(bank.names, categories, spec.test_fraction, spec.seed)


def _split_pool(spec: BenchmarkSpec, bank: ObjectBank, split: str) -> torch.Tensor:
    """(M,) long bank rows a clip of `split` may show: pool B for test, pool A otherwise."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {list(SPLITS)}")
    pool_a, pool_b = benchmark_pools(spec, bank)
    return torch.tensor(pool_b if split == "test" else pool_a, dtype=torch.long)


BENCHMARK_BACKGROUNDS = ("photos", "noise")


def _backgrounds(spec: BenchmarkSpec, count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 3, T, S, S) uint8 static backgrounds of spec.background."""
    if spec.background == "noise":
        from ..motion.backgrounds import make_background

        return make_background("noise", count, spec.num_frames, spec.size, spec.size, generator).contiguous()
    return still_backgrounds(count, spec.size, spec.num_frames, generator)


def still_backgrounds(count: int, size: int, num_frames: int, generator: torch.Generator) -> torch.Tensor:
    """`count` static backgrounds: random square crops (30-100% of the shorter side) of the bundled still photos,
    resized to `size`, flipped left-right half of the time, repeated over time.

    Returns:
        (count, 3, T, size, size) uint8.
    """
    from ..motion.backgrounds import still_photos

    photos = still_photos()
    g = generator
    out = torch.empty(count, 3, num_frames, size, size, dtype=torch.uint8)
    which = torch.randint(0, len(photos), (count,), generator=g)
    frac, px, py, flip = torch.rand(4, count, generator=g)  # (count,) each
    for i in range(count):
        photo = photos[int(which[i])]  # (3, H, W) uint8
        _, h, w = photo.shape
        side = max(8, int(min(h, w) * (0.3 + 0.7 * float(frac[i]))))
        y0, x0 = int(float(py[i]) * (h - side)), int(float(px[i]) * (w - side))
        crop = photo[:, y0:y0 + side, x0:x0 + side].float().unsqueeze(0)  # (1, 3, side, side)
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        if float(flip[i]) < 0.5:
            crop = crop.flip(-1)
        out[i] = crop.round().clamp(0, 255).to(torch.uint8).unsqueeze(1)  # (3, 1, S, S) -> broadcast over T
    return out


def _atlas_size(spec: BenchmarkSpec) -> int:
    """Atlas cell side: 1.5 texels per screen pixel of the largest object (either task), a multiple of 16."""
    grow = max(spec.scale_ratio, 1 / spec.scale_ratio) ** 0.5  # motion task: the largest scale, at an end frame
    appear = float(spec.appearance_motion.get("scale_max", 1.5))  # appearance task: MotionConfig's largest scale
    largest = spec.object_size[1] * spec.size * max(grow, appear)
    return max(16, int(-(-1.5 * largest // 16) * 16))


def motion_objects(bank: ObjectBank) -> torch.Tensor:
    """Atlas rows usable for the motion task: every object whose look changes under rotation, (M,) long."""
    change = rotation_symmetry(bank.atlas(32), _SYMMETRY_ANGLE)  # (N,)
    keep = torch.nonzero(change >= _SYMMETRY_MIN).flatten()
    if len(keep) == 0:
        raise ValueError("motion task: every held-out object is rotation-invariant")
    return keep


def _motion_pool(spec: BenchmarkSpec, bank: ObjectBank, split: str) -> torch.Tensor:
    """(M,) long rows the motion task's `split` draws from: the motion objects of the split's pool."""
    usable = motion_objects(bank)  # (U,)
    keep = usable[torch.isin(usable, _split_pool(spec, bank, split))]
    if len(keep) == 0:
        raise ValueError(f"motion task: no rotation-variant object in the {split} pool")
    return keep


def _generator(spec: BenchmarkSpec, task: str, split: str) -> torch.Generator:
    """One generator per (task, split), so a task's clips do not depend on which other tasks are generated."""
    offset = 1 + TASKS.index(task) * len(SPLITS) + SPLITS.index(split)
    return torch.Generator().manual_seed(spec.seed * 7919 + offset)


def render_motion_task(spec: BenchmarkSpec, split: str, bank: ObjectBank | None = None,
                       with_alpha: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                          torch.Tensor | None]:
    """Render every clip of the motion task's `split` (train, val or test) in memory.

    Clip ``i`` of every class shares its anchor (objects, sizes, background, middle-frame pose). Train and val
    draw objects from pool A, test from pool B (`benchmark_pools`).

    Returns:
        video: (C, n, 3, T, S, S) uint8, class-major (C classes, n clips per class);
        labels: (C, n) long;
        object_ids: (n, K) long, rows of the held-out bank (the same for every class);
        alpha: (C, n, K, T, S, S) float, each object's coverage (its wrapped copies summed, clamped to 1), or
        None unless `with_alpha`.
    """
    bank = heldout_bank() if bank is None else bank
    pool = _motion_pool(spec, bank, split)
    n = spec.per_class(split)
    g = _generator(spec, "motion", split)
    atlas = bank.atlas(_atlas_size(spec))
    anchors = sample_anchors(n, spec.num_objects, spec.size, pool, spec.object_size, g)
    backgrounds = _backgrounds(spec, n, g)  # (n, 3, T, S, S)
    C, K, T, S = len(spec.motion_classes), spec.num_objects, spec.num_frames, spec.size
    video = torch.empty(C, n, 3, T, S, S, dtype=torch.uint8)
    alpha = torch.empty(C, n, K, T, S, S) if with_alpha else None
    for c, name in enumerate(spec.motion_classes):
        params = wrap_copies(motion_class_params(anchors, name, T, S, spec.travel, spec.rotation,
                                                 spec.scale_ratio), S)
        for lo in range(0, n, _CHUNK):
            sl = slice(lo, min(n, lo + _CHUNK))
            v, a = composite(backgrounds[sl], atlas, _rows(params, sl))  # a: (b, 4 K, T, S, S)
            video[c, sl] = v
            if alpha is not None:
                alpha[c, sl] = a.dense().view(a.shape[0], K, 4, T, S, S).sum(2).clamp_(max=1.0)
    labels = torch.arange(C).view(C, 1).expand(C, n).contiguous()
    return video, labels, anchors.object_ids, alpha


def render_appearance_task(spec: BenchmarkSpec, split: str, bank: ObjectBank | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Render every clip of the appearance task's `split`: one object of the class's family per clip, moving
    and turning as in pretraining (`sample_motion`), over a still-photo crop.

    The classes are chosen on the whole held-out bank; a train or val clip shows a pool A object of its family, a
    test clip a pool B object (`benchmark_pools`): test measures recognising the family on unseen objects. Objects
    of a family are used in turn (a random order per class), so each is shown about equally often.

    Returns:
        video: (C, n, 3, T, S, S) uint8; labels: (C, n) long; object_ids: (C, n) long bank rows; class names.
    """
    from ..config import MotionConfig
    from ..motion.params import REFERENCE_SIZE

    bank = heldout_bank() if bank is None else bank
    names = [bank.categories[int(i)] for i in bank.labels]
    classes, members = appearance_families(names, spec.appearance_classes, spec.appearance_min_objects)
    pool = set(_split_pool(spec, bank, split).tolist())
    members = [[r for r in rows if r in pool] for rows in members]
    empty = [c for c, rows in zip(classes, members) if not rows]
    if empty:
        raise ValueError(f"appearance task: families {empty} have no object in the {split} pool")
    n = spec.per_class(split)
    C, T, S = len(classes), spec.num_frames, spec.size
    g = _generator(spec, "appearance", split)
    cfg = MotionConfig(num_objects=1, size_min=spec.object_size[0] * REFERENCE_SIZE,
                       size_max=spec.object_size[1] * REFERENCE_SIZE, **spec.appearance_motion)
    try:
        cfg.validate()
    except ValueError as e:
        raise ValueError(f"BenchmarkSpec.appearance_motion: {e}") from e
    params = sample_motion(C * n, T, S, S, len(bank), cfg, g)  # object ids replaced below
    object_ids = torch.empty(C, n, dtype=torch.long)
    for c, rows in enumerate(members):
        order = torch.tensor(rows)[torch.randperm(len(rows), generator=g)]
        object_ids[c] = order[torch.arange(n) % len(rows)]
    params.object_ids = object_ids.view(C * n, 1)
    backgrounds = _backgrounds(spec, C * n, g)  # (C n, 3, T, S, S)
    atlas = bank.atlas(_atlas_size(spec))
    video = torch.empty(C * n, 3, T, S, S, dtype=torch.uint8)
    for lo in range(0, C * n, _CHUNK):
        sl = slice(lo, min(C * n, lo + _CHUNK))
        video[sl] = composite(backgrounds[sl], atlas, _rows(params, sl))[0]
    labels = torch.arange(C).view(C, 1).expand(C, n).contiguous()
    return video.view(C, n, 3, T, S, S), labels, object_ids, classes


def _rows(params: MotionParams, sl: slice) -> MotionParams:
    return MotionParams(**{f.name: getattr(params, f.name)[sl] for f in dataclasses.fields(params)})


# -------------------------------------------------------------------------------------------------------------
def _write_split(root: Path, task: str, split: str, video: torch.Tensor, classes: Sequence[str],
                 objects: list[list[str]], spec: BenchmarkSpec, progress: Progress | None, done: int,
                 total: int) -> tuple[Path, int]:
    """Write the clips of one split as mp4, then its list and per-clip metadata. video: (C, n, 3, T, S, S)."""
    from ..data.video_io import write_video

    C, n = video.shape[:2]
    lines, meta = [], []
    for c in range(C):
        for i in range(n):
            rel = f"{split}/{classes[c]}_{i:04d}.mp4"  # relative to the list's folder, root/<task>
            write_video(root / task / rel, video[c, i].permute(1, 2, 3, 0), fps=spec.fps, quality=spec.quality)
            lines.append(f"{rel} {c}")
            meta.append(json.dumps({"path": rel, "label": c, "objects": objects[c * n + i]}))
            done += 1
            if progress is not None:
                progress(task, done, total)
    list_path = root / task / f"{split}.csv"
    atomic_write_text(root / task / f"{split}_meta.jsonl", "\n".join(meta) + "\n")
    atomic_write_text(list_path, "\n".join(lines) + "\n")
    return list_path, done


def _generate_task(root: Path, task: str, spec: BenchmarkSpec, bank: ObjectBank,
                   progress: Progress | None) -> TaskLists:
    out: dict[str, Path] = {}
    done, classes = 0, []
    for split in SPLITS:
        n = spec.per_class(split)
        if task == "motion":
            video, _, ids, _ = render_motion_task(spec, split, bank)
            classes = list(spec.motion_classes)
            per_clip = [[bank.names[int(j)] for j in ids[i]] for i in range(n)]  # shared by every class
            objects = [per_clip[i] for _ in classes for i in range(n)]
        else:
            video, _, ids, classes = render_appearance_task(spec, split, bank)
            objects = [[bank.names[int(j)]] for j in ids.flatten()]
        total = len(classes) * sum(spec.per_class(s) for s in SPLITS)
        out[split], done = _write_split(root, task, split, video, classes, objects, spec, progress, done, total)
    atomic_write_text(root / task / "classes.txt", "\n".join(classes) + "\n")
    atomic_write_text(root / task / "labels.json", json.dumps({c: i for i, c in enumerate(classes)}, indent=1))
    return TaskLists(train=out["train"], val=out["val"], test=out["test"], classes=classes, root=root / task)


def _existing(root: Path, record: dict) -> dict[str, TaskLists] | None:
    """The requested tasks of a complete benchmark at `root` made with the same spec (it may hold more tasks), or
    None (absent, different or damaged)."""
    try:
        old = json.loads((root / "spec.json").read_text())
    except (OSError, ValueError):
        return None
    same = {k: v for k, v in old.items() if k != "tasks"} == {k: v for k, v in record.items() if k != "tasks"}
    if not same or not set(record["tasks"]) <= set(old.get("tasks", [])):
        return None
    out = {}
    for task in record["tasks"]:
        d = root / task
        try:
            classes = [c for c in (d / "classes.txt").read_text().splitlines() if c]
            for split in SPLITS:
                for line in (d / f"{split}.csv").read_text().splitlines():
                    if line.strip() and not (d / line.split()[0]).is_file():
                        return None
        except OSError:
            return None
        out[task] = TaskLists(train=d / "train.csv", val=d / "val.csv", test=d / "test.csv", classes=classes,
                              root=d)
    return out


def generate_benchmark(root: str | Path, spec: BenchmarkSpec | None = None, tasks: Sequence[str] = TASKS,
                       progress: Progress | None = None) -> dict[str, TaskLists]:
    """Write the benchmark under `root` (see the module docstring) and return each task's lists.

    Idempotent: when `root` already holds a complete benchmark of the same spec and generator version with (at
    least) the requested tasks (``spec.json``, written last), nothing is regenerated. Otherwise the requested task
    folders are rewritten and ``spec.json`` then lists only the requested tasks.
    `progress(task, done, total)` is called after every clip written.
    """
    spec = spec or BenchmarkSpec()
    spec.validate()
    tasks = tuple(tasks)
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ValueError(f"generate_benchmark: unknown tasks {bad}; choose from {list(TASKS)}")
    root = Path(root)
    bank = heldout_bank()
    pool_a, pool_b = benchmark_pools(spec, bank)
    record = {"generator_version": GENERATOR_VERSION, "tasks": list(tasks), "spec": spec.to_dict(),
              "bank": {"split": "heldout", "objects": len(bank), "names": bank.names},
              "pools": {"train_val": [bank.names[i] for i in pool_a], "test": [bank.names[i] for i in pool_b]}}
    found = _existing(root, record)
    if found is not None:
        return found
    ours = (root / "spec.json").is_file()
    (root / "spec.json").unlink(missing_ok=True)  # incomplete from here until the new spec.json is written
    out = {}
    for task in tasks:
        if ours and (root / task).is_dir():
            shutil.rmtree(root / task)  # a previous benchmark's clips: stale files must not linger
        out[task] = _generate_task(root, task, spec, bank, progress)
    atomic_write_text(root / "spec.json", json.dumps(record, indent=1))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smile_video.eval.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("out", help="benchmark root folder")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    for f in dataclasses.fields(BenchmarkSpec):
        if f.type in ("int", "float"):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=int if f.type == "int" else float,
                                default=getattr(BenchmarkSpec(), f.name))
    args = parser.parse_args(argv)
    spec = BenchmarkSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BenchmarkSpec)
                            if hasattr(args, f.name)})
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(task: str, done: int, total: int) -> None:
        bar = bars.setdefault(task, tqdm(total=total, desc=task, unit="clip"))
        bar.update(done - bar.n)

    lists = generate_benchmark(args.out, spec, args.tasks, progress)
    for bar in bars.values():
        bar.close()
    for task, tl in lists.items():
        print(f"{task}: {len(tl.classes)} classes {tl.classes}\n  train {tl.train}\n  val   {tl.val}\n"
              f"  test  {tl.test}\n  (paths relative to {tl.root}, the lists' folder)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
