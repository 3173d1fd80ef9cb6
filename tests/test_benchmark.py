"""The embedded benchmark: real mp4 files and lists, balanced classes that differ as intended, held-out objects
only, disjoint object pools for train / val and test, determinism and idempotence."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from smile_video.data.lists import class_counts, read_label_map, read_video_list
from smile_video.data.video_io import read_video
from smile_video.eval.benchmark import (
    BenchmarkSpec,
    benchmark_pools,
    generate_benchmark,
    heldout_bank,
    render_appearance_task,
    render_motion_task,
)
from smile_video.eval.benchmark_tasks import (
    MOTION_CLASSES,
    Anchors,
    motion_class_params,
    object_family,
    object_pools,
    rotation_symmetry,
    wrap_copies,
)
from smile_video.motion import composite
from smile_video.objects import default_bank, split_of

# What each class name promises, written out independently of the generator's table: (dx, dy) with y down,
# rotation sense (+1 = anticlockwise on screen), growth sense.
NAMED = {"move_right": ((1, 0), 0, 0), "move_left": ((-1, 0), 0, 0), "move_down": ((0, 1), 0, 0),
         "move_up": ((0, -1), 0, 0), "rotate_clockwise": ((0, 0), -1, 0), "rotate_anticlockwise": ((0, 0), 1, 0),
         "grow": ((0, 0), 0, 1), "shrink": ((0, 0), 0, -1)}
TINY = dict(num_frames=6, size=32, train_per_class=2, val_per_class=1, test_per_class=1, object_size=(0.3, 0.4))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    return root, generate_benchmark(root, BenchmarkSpec(**TINY))


# ------------------------------------------------------------------------------------------------------------
def test_files_and_lists_decode_through_the_data_path(bench):
    root, lists = bench
    assert set(lists) == {"motion", "appearance"}
    for task, tl in lists.items():
        names = read_label_map(root / task / "classes.txt")
        assert list(names) == tl.classes and list(names.values()) == list(range(len(tl.classes)))
        assert json.loads((root / task / "labels.json").read_text()) == names
        for split, per_class in (("train", 2), ("val", 1), ("test", 1)):
            entries = read_video_list(getattr(tl, split))  # paths relative to the list's folder: no data_root
            assert tl.root == root / task and all(Path(e.path).is_file() for e in entries)
            assert class_counts(entries) == {c: per_class for c in range(len(tl.classes))}
            for e in entries[:: max(1, len(entries) // 5)]:
                frames, fps = read_video(e.path)
                assert tuple(frames.shape) == (6, 32, 32, 3) and frames.dtype == torch.uint8
                assert fps == pytest.approx(8.0)
    assert len(lists["motion"].classes) >= 8


def test_decoded_clips_match_the_rendered_ones(bench):
    root, _ = bench
    video, _, _, _ = render_motion_task(BenchmarkSpec(**TINY), "train")  # (C, n, 3, T, S, S)
    decoded, _ = read_video(root / "motion/train/rotate_clockwise_0001.mp4")  # (T, S, S, 3)
    c = list(MOTION_CLASSES).index("rotate_clockwise")
    err = (decoded.permute(3, 0, 1, 2).float() - video[c, 1].float()).abs().mean()
    assert err < 6.0  # x264 at CRF 18: a few grey levels
    other = (decoded.permute(3, 0, 1, 2).float() - video[c, 0].float()).abs().mean()
    assert other > 3 * err  # and a different clip is far from it


def test_heldout_objects_only(bench):
    root, _ = bench
    heldout, pretrain = set(default_bank("heldout").names), set(default_bank("pretrain").names)
    for task in ("motion", "appearance"):
        for split in ("train", "val", "test"):
            for line in (root / task / f"{split}_meta.jsonl").read_text().splitlines():
                rec = json.loads(line)
                assert rec["objects"], rec
                assert all(split_of(n) == "heldout" and n in heldout and n not in pretrain for n in rec["objects"])


def test_train_and_val_show_pool_a_objects_and_test_pool_b(bench):
    """spec.json records two disjoint pools; every train / val clip shows only pool A objects, every test clip only
    pool B objects; an appearance test clip shows an unseen object of its own family."""
    root, lists = bench
    pools = json.loads((root / "spec.json").read_text())["pools"]
    pool_a, pool_b = set(pools["train_val"]), set(pools["test"])
    assert pool_a and pool_b and not pool_a & pool_b
    assert pool_a | pool_b == set(default_bank("heldout").names)
    bank = heldout_bank()
    family = {n: object_family(bank.categories[int(bank.labels[i])]) for i, n in enumerate(bank.names)}
    for task, tl in lists.items():
        for split, pool in (("train", pool_a), ("val", pool_a), ("test", pool_b)):
            recs = [json.loads(x) for x in (root / task / f"{split}_meta.jsonl").read_text().splitlines()]
            assert len(recs) == len(tl.classes) * TINY[f"{split}_per_class"]
            for r in recs:
                assert set(r["objects"]) <= pool, (task, split, r)
                if task == "appearance":
                    assert {family[n] for n in r["objects"]} == {tl.classes[r["label"]]}


def test_object_pools_rule():
    """Per family, round(n / 3) objects to pool B, at least 2 when n >= 3, at most n - 1: a family of >= 2 objects
    is in both pools. Deterministic; the seed changes which objects."""
    cats = ["flag A"] * 9 + ["shape X"] * 3 + ["cat"] * 2 + ["zzz"] + ["bus"] * 5
    names = [f"o{i}" for i in range(len(cats))]
    a, b = object_pools(names, cats, 1 / 3, seed=0)
    assert sorted(a + b) == list(range(len(cats))) and not set(a) & set(b)
    in_b = {fam: sum(object_family(cats[i]) == fam for i in b) for fam in ("flag", "shape", "animal", "vehicle")}
    assert in_b == {"flag": 3, "shape": 2, "animal": 1, "vehicle": 2}
    assert 14 in a  # the lone "zzz" object stays in pool A
    assert object_pools(names, cats, 1 / 3, seed=0) == (a, b)
    assert any(object_pools(names, cats, 1 / 3, seed=s)[1] != b for s in range(1, 4))
    with pytest.raises(ValueError, match="unique"):
        object_pools(["x", "x"], ["cat", "dog"], 1 / 3, seed=0)


def test_benchmark_pools_keep_every_appearance_family_in_both():
    bank, spec = heldout_bank(), BenchmarkSpec()
    a, b = benchmark_pools(spec, bank)
    assert not set(a) & set(b) and len(a) + len(b) == len(bank)
    assert 0.25 < len(b) / len(bank) < 0.4
    names = [bank.categories[int(i)] for i in bank.labels]
    from smile_video.eval.benchmark_tasks import appearance_families

    _, members = appearance_families(names, spec.appearance_classes, spec.appearance_min_objects)
    for rows in members:
        assert len(set(rows) & set(b)) >= 2 and len(set(rows) & set(a)) >= 1
    assert benchmark_pools(BenchmarkSpec(), bank) == (a, b)
    assert benchmark_pools(BenchmarkSpec(seed=1), bank) != (a, b)
    _, _, ids, _ = render_motion_task(BenchmarkSpec(**{**TINY, "test_per_class": 6}), "test", bank)
    assert set(ids.flatten().tolist()) <= set(b)  # rendered in memory too: test anchors from pool B


def test_motion_classes_share_appearance(bench):
    """Clip i of every motion class shows the same objects: per-class object histograms are identical."""
    root, lists = bench
    recs = [json.loads(x) for x in (root / "motion/train_meta.jsonl").read_text().splitlines()]
    by_class: dict[int, list] = {}
    for r in recs:
        by_class.setdefault(r["label"], []).append(r["objects"])
    first = by_class[0]
    assert len(by_class) == len(lists["motion"].classes)
    assert all(v == first for v in by_class.values())


def test_appearance_clips_show_their_family_evenly():
    spec = BenchmarkSpec(**{**TINY, "train_per_class": 12})
    bank = heldout_bank()
    _, labels, ids, classes = render_appearance_task(spec, "train", bank)
    assert len(classes) == 8 and len(set(classes)) == 8
    for c, name in enumerate(classes):
        fams = {object_family(bank.categories[int(bank.labels[i])]) for i in ids[c]}
        assert fams == {name}
        counts = torch.bincount(ids[c]).tolist()
        used = [k for k in counts if k]
        assert max(used) - min(used) <= 1  # objects used in turn
    assert torch.equal(labels, torch.arange(8).view(8, 1).expand(8, 12))


# ------------------------------------------------------------------------------------------------------------
def _circular_centroid(a: torch.Tensor) -> torch.Tensor:
    """a: (T, S, S) alpha on a torus -> (T, 2) circular mean position (x, y) in pixels."""
    S = a.shape[-1]
    ang = torch.arange(S) * 2 * math.pi / S
    out = []
    for dim in (-1, -2):  # x, y
        m = a.sum(dim=-2 if dim == -1 else -1)  # (T, S) marginal along the axis
        th = torch.atan2((m * ang.sin()).sum(-1), (m * ang.cos()).sum(-1))
        out.append(torch.remainder(th, 2 * math.pi) * S / (2 * math.pi))
    return torch.stack(out, -1)


def _step(p: torch.Tensor, S: int) -> torch.Tensor:
    d = p[1:] - p[:-1]
    return torch.remainder(d + S / 2, S) - S / 2  # shortest displacement on the torus


def _rot_about_center(x: torch.Tensor, deg: float) -> torch.Tensor:
    """Rotate (C, S, S) images counter-clockwise on screen by `deg` about the image centre."""
    a = math.radians(deg)  # affine_grid maps output to input: the inverse rotation, written for y pointing down
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
    grid = F.affine_grid(theta[None], [1, *x.shape], align_corners=False)
    return F.grid_sample(x[None], grid, align_corners=False)[0]


def test_motion_classes_move_as_named():
    spec = BenchmarkSpec(num_frames=8, size=48, train_per_class=4, val_per_class=4, num_objects=1,
                         object_size=(0.3, 0.4), seed=3)
    video, _, _, alpha = render_motion_task(spec, "val", with_alpha=True)
    S, T = spec.size, spec.num_frames
    px_step = spec.travel * S / (T - 1)
    deg_step = spec.rotation / (T - 1)
    assert set(spec.motion_classes) == set(NAMED)
    for c, name in enumerate(spec.motion_classes):
        (dx, dy), spin, grow = NAMED[name]
        for i in range(spec.val_per_class):
            a = alpha[c, i, 0]  # (T, S, S)
            steps = _step(_circular_centroid(a), S)  # (T - 1, 2)
            if dx or dy:  # a constant step the class's way
                want = torch.tensor([dx, dy]) * px_step
                assert torch.allclose(steps, want.expand_as(steps), atol=0.6), (name, i, steps)
            else:  # no travel: only the sprite's alpha centroid turning or scaling about the cell centre; a half
                # turn moves it by twice its offset from the cell centre (a few pixels for a lopsided glyph),
                # against travel * S = 24 px for the translating classes
                assert float(steps.sum(0).norm()) < 0.3 * spec.travel * S, (name, i, steps)
            area = a.sum((-1, -2))  # (T,)
            ratio = float(area[-1] / area[0])
            assert ratio == pytest.approx(spec.scale_ratio ** (2 * grow), rel=0.12), (name, i, ratio)
            if spin:
                # the object at t + 1 matches the object at t turned by the class's sense better than the other way
                votes = 0
                for t in range(T - 1):
                    crops = []
                    for tt in (t, t + 1):
                        cx, cy = _circular_centroid(a[tt:tt + 1])[0].tolist()
                        obj = (video[c, i, :, tt].float() / 255) * a[tt]  # (3, S, S) premultiplied object
                        crops.append(torch.roll(obj, (round(S / 2 - cy), round(S / 2 - cx)), (-2, -1)))
                    err = {s: (_rot_about_center(crops[0], s * deg_step) - crops[1]).abs().mean() for s in (1, -1)}
                    votes += int(err[spin] < err[-spin])
                assert votes >= T - 2, (name, i, votes)


def test_motion_params_are_the_class_motion_about_the_anchor():
    g = torch.Generator().manual_seed(0)
    anchors = Anchors(torch.zeros(3, 2, dtype=torch.long), torch.full((3, 2, 2), 10.0),
                      torch.rand(3, 2, 2, generator=g) * 64, torch.rand(3, 2, generator=g) * 360 - 180)
    for name, ((dx, dy), spin, grow) in NAMED.items():
        p = motion_class_params(anchors, name, 5, 64, travel=0.25, rotation=180.0, scale_ratio=2.0)
        mid = 2  # the middle frame is the anchor pose
        assert torch.allclose(p.centers[:, :, mid], anchors.centers) and torch.allclose(p.angles[:, :, mid],
                                                                                       anchors.angles)
        assert torch.allclose(p.scales[:, :, mid], torch.ones(3, 2))
        assert torch.allclose(p.angles[:, :, -1] - p.angles[:, :, 0], torch.full((3, 2), 180.0 * spin))
        assert torch.allclose(p.scales[:, :, -1] / p.scales[:, :, 0], torch.full((3, 2), 2.0 ** grow))
        assert bool((p.centers >= 0).all() and (p.centers < 64).all())
        d = torch.remainder(p.centers[:, :, -1] - p.centers[:, :, 0] + 32, 64) - 32
        assert torch.allclose(d, torch.tensor([dx, dy], dtype=torch.float) * 16, atol=1e-4)


def test_wrap_copies_keep_an_object_whole_across_the_border():
    atlas = torch.zeros(1, 4, 16, 16, dtype=torch.uint8)
    atlas[0, :, 2:14, 2:14] = 255  # an opaque white square
    base = Anchors(torch.zeros(1, 1, dtype=torch.long), torch.full((1, 1, 2), 12.0), torch.tensor([[[16.0, 16.0]]]),
                   torch.zeros(1, 1))
    edge = Anchors(base.object_ids, base.sizes, torch.tensor([[[0.5, 31.0]]]), base.angles)
    bg = torch.zeros(1, 3, 2, 32, 32, dtype=torch.uint8)
    areas = []
    for anchors in (base, edge):
        p = wrap_copies(motion_class_params(anchors, "grow", 2, 32, 0.5, 180.0, 1.0), 32)
        assert p.num_objects == 4
        v, a = composite(bg, atlas, p)
        areas.append(float(a.dense().sum()))
        if anchors is edge:  # the square shows in all four corners
            for ys, xs in ((slice(0, 3), slice(0, 3)), (slice(0, 3), slice(29, 32)), (slice(29, 32), slice(0, 3)),
                           (slice(29, 32), slice(29, 32))):
                assert v[0, 0, 0, ys, xs].float().mean() > 200
    assert areas[1] == pytest.approx(areas[0], rel=0.02)


def test_rotation_symmetry_flags_discs_not_arrows():
    S = 32
    yy, xx = torch.meshgrid(torch.arange(S) - 15.5, torch.arange(S) - 15.5, indexing="ij")
    disc = torch.zeros(4, S, S, dtype=torch.uint8)
    disc[:, (xx ** 2 + yy ** 2) < 12 ** 2] = 255
    arrow = torch.zeros(4, S, S, dtype=torch.uint8)
    arrow[:, 12:20, 2:30] = 255
    arrow[:, 4:28, 22:26] = 255
    score = rotation_symmetry(torch.stack([disc, arrow]), 30.0)
    assert score[0] < 0.06 < score[1]


def test_family_rules():
    assert object_family("flag US") == "flag"
    assert object_family("openmoji extra E008") == "extra"
    assert object_family("cat face") == "animal"  # first matching rule wins
    assert object_family("astonished face") == "face"
    assert object_family("shape hexagon") == "shape"
    assert object_family("zzz qqq") is None


# ------------------------------------------------------------------------------------------------------------
def test_idempotent_and_regenerates_when_the_spec_changes(tmp_path):
    spec = BenchmarkSpec(**{**TINY, "train_per_class": 1, "motion_classes": ("move_left", "grow")})
    lists = generate_benchmark(tmp_path, spec, tasks=("motion",))
    clip = tmp_path / "motion/train/grow_0000.mp4"
    stamp = clip.stat().st_mtime_ns
    assert generate_benchmark(tmp_path, spec, tasks=("motion",)) == lists
    assert clip.stat().st_mtime_ns == stamp
    assert set(generate_benchmark(tmp_path, spec, tasks=("motion",))) == {"motion"}
    clip.unlink()  # a damaged benchmark is made again
    generate_benchmark(tmp_path, spec, tasks=("motion",))
    assert clip.is_file()
    test_clip = tmp_path / "motion/test/move_left_0000.mp4"
    test_clip.unlink()  # the test split counts as part of the benchmark
    assert generate_benchmark(tmp_path, spec, tasks=("motion",))["motion"].test == tmp_path / "motion/test.csv"
    assert test_clip.is_file()
    other = BenchmarkSpec(**{**TINY, "train_per_class": 1, "motion_classes": ("move_up", "grow")})
    generate_benchmark(tmp_path, other, tasks=("motion",))
    assert not (tmp_path / "motion/train/move_left_0000.mp4").exists()  # stale clips removed
    assert json.loads((tmp_path / "spec.json").read_text())["spec"]["motion_classes"] == ["move_up", "grow"]


def test_subset_of_a_complete_benchmark_is_not_regenerated(bench):
    root, lists = bench
    clip = root / "appearance/val/flag_0000.mp4"
    stamp = clip.stat().st_mtime_ns
    sub = generate_benchmark(root, BenchmarkSpec(**TINY), tasks=("appearance",))
    assert sub == {"appearance": lists["appearance"]} and clip.stat().st_mtime_ns == stamp
    assert json.loads((root / "spec.json").read_text())["tasks"] == ["motion", "appearance"]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def test_same_seed_same_clips_other_seed_other_clips(tmp_path):
    """The rendered clips are a function of the spec; the mp4s hold them up to the encoder's loss. libx264 (PyAV's,
    one thread) does not give the same bytes for every clip on every run (~1 % of 64-px clips have two encodings;
    docs/benchmark_tasks.md), so two generations' files agree to within that noise, not to the byte."""
    spec = BenchmarkSpec(**{**TINY, "train_per_class": 1, "motion_classes": ("move_right", "shrink")})
    other = BenchmarkSpec(**{**TINY, "train_per_class": 1, "seed": 1, "motion_classes": ("move_right", "shrink")})
    rendered = {}
    for task, render in (("motion", render_motion_task), ("appearance", render_appearance_task)):
        for split in ("train", "val", "test"):
            a, b, c = render(spec, split)[0], render(spec, split)[0], render(other, split)[0]
            assert torch.equal(a, b), f"{task} {split}: two renders of one spec differ"
            assert not torch.equal(a, c), f"{task} {split}: seeds 0 and 1 render the same clips"
            rendered[task, split] = a  # (C, n, 3, T, S, S)
    lists = {x: generate_benchmark(tmp_path / x, s) for x, s in (("a", spec), ("b", spec), ("c", other))}
    for task in ("motion", "appearance"):
        for split in ("train", "val", "test"):
            for line in (lists["a"][task].root / f"{split}.csv").read_text().splitlines():
                rel, label = line.split()
                clip = rendered[task, split][int(label), int(Path(rel).stem.rsplit("_", 1)[1])]  # (3, T, S, S)
                a, b, c = (read_video(lists[x][task].root / rel)[0].permute(3, 0, 1, 2) for x in "abc")
                # each file holds its rendered clip (yuv420p at 32 px and CRF 18: >= 26 dB measured; another
                # clip, object or frame order is far below)
                assert _psnr(a, clip) > 24, f"{task}/{rel}: the mp4 is not its rendered clip ({_psnr(a, clip):.1f} dB)"
                # two generations of one spec: the same clip up to encoder noise (identical for most clips)
                assert _psnr(a, b) > 35, f"{task}/{rel}: two generations of one spec differ ({_psnr(a, b):.1f} dB)"
                assert _psnr(a, c) < 35, f"{task}/{rel}: seeds 0 and 1 give the same clip"


def test_module_entry_point_writes_the_files(tmp_path, capsys):
    from smile_video.eval.benchmark import main

    assert main([str(tmp_path), "--tasks", "appearance", "--size", "32", "--num-frames", "4",
                 "--train-per-class", "1", "--val-per-class", "1", "--test-per-class", "2"]) == 0
    out = capsys.readouterr().out
    assert "appearance: 8 classes" in out and str(tmp_path / "appearance/test.csv") in out
    spec = json.loads((tmp_path / "spec.json").read_text())
    assert spec["tasks"] == ["appearance"] and spec["spec"]["size"] == 32 and spec["spec"]["test_per_class"] == 2
    assert spec["generator_version"] == 3 and set(spec["pools"]) == {"train_val", "test"}
    assert len((tmp_path / "appearance/val.csv").read_text().splitlines()) == 8
    assert len((tmp_path / "appearance/test.csv").read_text().splitlines()) == 16


def test_bad_spec_is_rejected_by_name(tmp_path):
    with pytest.raises(ValueError, match="size"):
        generate_benchmark(tmp_path, BenchmarkSpec(size=33))
    with pytest.raises(ValueError, match="motion_classes"):
        generate_benchmark(tmp_path, BenchmarkSpec(motion_classes=("move_right", "jump")))
    with pytest.raises(ValueError, match="appearance_motion"):
        generate_benchmark(tmp_path, BenchmarkSpec(appearance_motion={"speed": 2.0}))
    with pytest.raises(ValueError, match="test_per_class"):
        generate_benchmark(tmp_path, BenchmarkSpec(test_per_class=0))
    with pytest.raises(ValueError, match="test_fraction"):
        generate_benchmark(tmp_path, BenchmarkSpec(test_fraction=1.0))
    with pytest.raises(ValueError, match="appearance_min_objects"):
        generate_benchmark(tmp_path, BenchmarkSpec(appearance_min_objects=2))
    with pytest.raises(ValueError, match="unknown tasks"):
        generate_benchmark(tmp_path, BenchmarkSpec(), tasks=("colour",))
    with pytest.raises(ValueError, match="background"):
        generate_benchmark(tmp_path, BenchmarkSpec(background="places"))


def test_noise_background_variant_changes_only_the_background():
    photos, noise = BenchmarkSpec(**TINY), BenchmarkSpec(**TINY, background="noise")
    assert "background" not in photos.to_dict()  # the benchmark's spec.json is as before the option
    assert noise.to_dict()["background"] == "noise"
    vp, _, ids_p, ap = render_motion_task(photos, "train", with_alpha=True)  # (C, n, 3, T, S, S); (C, n, K, T, S, S)
    vn, _, ids_n, an = render_motion_task(noise, "train", with_alpha=True)
    assert torch.equal(ids_p, ids_n) and torch.equal(ap, an)  # same objects, poses and motion
    covered = ap.amax(2, keepdim=True) > 0  # (C, n, 1, T, S, S) pixels an object touches
    free = ~covered.expand_as(vn)
    # uniform noise: neighbouring background pixels are independent, a photo's are close
    dn = (vn[..., 1:].float() - vn[..., :-1].float()).abs()[free[..., 1:] & free[..., :-1]].mean()
    dp = (vp[..., 1:].float() - vp[..., :-1].float()).abs()[free[..., 1:] & free[..., :-1]].mean()
    assert dn > 60 and dp < 40
