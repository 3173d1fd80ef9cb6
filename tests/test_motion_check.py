"""benchmarks/motion_check.py: the independent motion set is deterministic, its classes move as named, its test split
shows the held-out shape family, and its files read with the project's list reader and decoder."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from smile_video.data.decode import open_video
from smile_video.data.lists import read_label_map, read_video_list

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "motion_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("motion_check", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["motion_check"] = mod  # dataclasses look the module up by name
    spec.loader.exec_module(mod)
    return mod


mc = _load()
SIZE = 64


def _centroid_area(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the object's centroid (x, y) and area (pixels), from its coverage."""
    ys, xs = np.mgrid[: alpha.shape[1], : alpha.shape[2]] + 0.5
    area = alpha.sum((1, 2))
    c = np.stack([(alpha * xs).sum((1, 2)), (alpha * ys).sum((1, 2))], 1) / area[:, None]
    return c, area


def _turn_degrees(alpha: np.ndarray) -> float:
    """Summed frame-to-frame change of the coverage's principal-axis angle (y down: positive = clockwise)."""
    c, _ = _centroid_area(alpha)
    ys, xs = np.mgrid[: alpha.shape[1], : alpha.shape[2]] + 0.5
    phis = []
    for a, (cx, cy) in zip(alpha, c):
        dx, dy = xs - cx, ys - cy
        mu20, mu02, mu11 = (a * dx * dx).sum(), (a * dy * dy).sum(), (a * dx * dy).sum()
        phis.append(0.5 * math.atan2(2 * mu11, mu20 - mu02))
    steps = np.diff(phis)
    steps = (steps + math.pi / 2) % math.pi - math.pi / 2  # the axis is defined modulo 180 degrees
    return math.degrees(steps.sum())


def test_clips_are_deterministic_for_a_seed_and_differ_across_seeds():
    a = mc.render_clip(mc.clip_rng(0, "train", 3, 1), "translate_down", mc.TRAIN_KINDS, SIZE)
    b = mc.render_clip(mc.clip_rng(0, "train", 3, 1), "translate_down", mc.TRAIN_KINDS, SIZE)
    c = mc.render_clip(mc.clip_rng(1, "train", 3, 1), "translate_down", mc.TRAIN_KINDS, SIZE)
    assert a.frames.shape == (16, SIZE, SIZE, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames) and a.meta == b.meta
    assert not np.array_equal(a.frames, c.frames)


@pytest.mark.parametrize("index", range(3))
def test_every_class_moves_as_named(index):
    for label, motion in enumerate(mc.CLASSES):
        kinds = ("ellipse",) if motion.startswith("rotate") else mc.TRAIN_KINDS + mc.TEST_KINDS
        clip = mc.render_clip(mc.clip_rng(7, "train", label, index), motion, kinds, SIZE)
        c, area = _centroid_area(clip.alpha)
        move = c[-1] - c[0]
        grow = area[-1] / area[0]
        assert clip.alpha[:, 0].max() < 0.01 and clip.alpha[:, -1].max() < 0.01  # the object stays inside
        assert clip.alpha[:, :, 0].max() < 0.01 and clip.alpha[:, :, -1].max() < 0.01
        if motion.startswith("translate"):
            want = np.array(mc._DIRECTIONS[motion])
            for axis in (0, 1):
                if want[axis]:
                    assert np.sign(move[axis]) == want[axis] and abs(move[axis]) > 0.1 * SIZE / (2 if want.all()
                                                                                              else 1), motion
                else:
                    assert abs(move[axis]) < 0.5, motion
            assert np.all(np.sign(np.diff(c, axis=0)[:, want != 0]) == want[want != 0]), motion  # every frame
            assert 0.9 < grow < 1.1, motion
        else:
            assert np.abs(c - c[0]).max() < 0.5, motion  # rotation and scaling stay in place
        if motion.startswith("rotate"):
            turn = _turn_degrees(clip.alpha)
            assert 0.9 < grow < 1.1
            assert (turn > 55) if motion == "rotate_clockwise" else (turn < -55), (motion, turn)
        if motion == "scale_up":
            assert grow > 2.5 and np.all(np.diff(area) > 0)
        if motion == "scale_down":
            assert grow < 0.4 and np.all(np.diff(area) < 0)
        # the background is static: where the object never is, the first and last frames agree
        away = (clip.alpha.max(0) < 1e-3)
        diff = np.abs(clip.frames[-1].astype(int) - clip.frames[0].astype(int))[away]
        assert away.sum() > 0.3 * SIZE * SIZE and diff.max() <= 1, motion


def test_translation_speeds_vary_within_a_class():
    speeds = [mc.render_clip(mc.clip_rng(0, "train", 1, i), "translate_right", mc.TRAIN_KINDS, SIZE).meta["speed"]
              for i in range(6)]
    assert max(speeds) - min(speeds) > 0.15 * (mc.SPEED[1] - mc.SPEED[0]) * SIZE


def test_shape_families():
    rng = np.random.default_rng(0)
    for kind in ("polygon", "ellipse", "star"):
        for _ in range(20):
            pts = mc.make_shape(rng, kind)
            r = np.sqrt((pts ** 2).sum(1))
            assert abs(r.max() - 1) < 1e-9 and np.abs(mc._polygon_centroid(pts)).max() < 1e-9
            if kind == "star":  # deep notches: a star's inner vertices lie at most ~half as far out
                assert r.min() < 0.6
            if kind == "polygon":
                assert 3 <= len(pts) <= 8
    assert not set(mc.TRAIN_KINDS) & set(mc.TEST_KINDS)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("mcheck") / "set"
    mc.generate(out, size=48, seed=0, per_class=(2, 1, 1), log=lambda *_: None)
    return out


def test_generated_set_lists_parse_and_test_shapes_are_held_out(small_set):
    classes = read_label_map(small_set / "classes.json")
    assert classes == {c: i for i, c in enumerate(mc.CLASSES)}
    counts = {"train": 2, "val": 1, "test": 1}
    for split, n in counts.items():
        lines = (small_set / f"{split}.csv").read_text().splitlines()
        assert all(len(ln.split(" ")) == 2 and ln.startswith(f"videos/{split}/") for ln in lines)
        entries = read_video_list(small_set / f"{split}.csv")
        assert len(entries) == n * len(mc.CLASSES)
        assert sorted(e.label for e in entries) == sorted(list(range(len(mc.CLASSES))) * n)
        assert all(Path(e.path).is_file() for e in entries)
        with_root = read_video_list(small_set / f"{split}.csv", data_root=str(small_set))
        assert [e.path for e in with_root] == [e.path for e in entries]
    meta = [json.loads(ln) for ln in (small_set / "meta.jsonl").read_text().splitlines()]
    assert len(meta) == 4 * len(mc.CLASSES)
    for m in meta:
        assert m["motion"] == mc.CLASSES[m["label"]]
        assert (m["shape"] in mc.TEST_KINDS) if m["split"] == "test" else (m["shape"] in mc.TRAIN_KINDS)
    assert {m["shape"] for m in meta if m["split"] == "test"} == {"star"}
    assert json.loads((small_set / "set.json").read_text())["per_class"] == [2, 1, 1]


def test_generated_videos_decode_to_16_frames(small_set):
    for e in read_video_list(small_set / "test.csv")[:4] + read_video_list(small_set / "train.csv")[:2]:
        with open_video(e.path, "pyav") as reader:
            assert reader.num_frames == 16
            frames = reader.get_frames(list(range(16)))
        assert tuple(frames.shape) == (16, 48, 48, 3)
        assert frames.float().std() > 5  # not blank


def test_generation_is_deterministic_and_seeded(small_set, tmp_path):
    again = tmp_path / "again"
    other = tmp_path / "other"
    mc.generate(again, size=48, seed=0, per_class=(2, 1, 1), log=lambda *_: None)
    mc.generate(other, size=48, seed=1, per_class=(2, 1, 1), log=lambda *_: None)
    for name in ("train.csv", "val.csv", "test.csv", "meta.jsonl", "classes.json"):
        assert (again / name).read_text() == (small_set / name).read_text()
    rel = "videos/test/rotate_clockwise_0000.mp4"
    with open_video(small_set / rel) as r1, open_video(again / rel) as r2, open_video(other / rel) as r3:
        a, b, c = (r.get_frames(list(range(16))) for r in (r1, r2, r3))
    assert a.equal(b) and not a.equal(c)
    assert (other / "meta.jsonl").read_text() != (small_set / "meta.jsonl").read_text()
    with pytest.raises(FileExistsError):
        mc.generate(again, size=48, seed=0, per_class=(1, 1, 1), log=lambda *_: None)
    mc.generate(again, size=48, seed=0, per_class=(1, 1, 1), overwrite=True, log=lambda *_: None)
    assert len((again / "train.csv").read_text().splitlines()) == len(mc.CLASSES)


def test_results_table_and_checkpoint_names(tmp_path):
    runs = {"A|0": {"linear": 20.0, "attentive": 30.0, "knn": 15.0, "finetune": 40.0},
            "A|1": {"linear": 30.0, "attentive": 40.0, "knn": 25.0, "finetune": 50.0},
            "random init|0": {"linear": 10.0, "attentive": 12.0, "knn": 11.0, "finetune": 13.0}}
    lines = mc.results_table({"runs": runs}, ["A", "random init"])
    assert lines[0].startswith("| encoder | linear probe, test top-1 | attentive probe")
    assert lines[2] == "| A | 25.0 ± 7.1 | 35.0 ± 7.1 | 20.0 ± 7.1 | 45.0 ± 7.1 | 2 |"
    assert lines[3] == "| random init | 10.0 | 12.0 | 11.0 | 13.0 | 1 |"
    (tmp_path / "m").mkdir()
    assert mc._parse_checkpoints([f"x={tmp_path / 'm'}"]) == {"x": str(tmp_path / "m")}
    for bad in (["x"], [f"random init={tmp_path / 'm'}"], [f"x={tmp_path / 'nope'}"]):
        with pytest.raises(SystemExit):
            mc._parse_checkpoints(bad)
