"""Clip sampling, crop transforms and VideoClipDataset: determinism per (seed, epoch, index), bad-file skipping."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from smile_video.config import DataConfig
from smile_video.data.dataset import TooManyBadVideos, VideoClipDataset, build_video_dataset, collate
from smile_video.data.lists import VideoEntry
from smile_video.data.sampling import TooShortError, clip_span, eval_indices, fitted_stride, train_indices
from smile_video.data.transforms import multiscale_crop_params, spatial_views, train_transform
from smile_video.data.video_io import write_video

STEP = 4
SCALES = (1.0, 0.875, 0.75, 0.66)


def numbered_frames(n: int, h: int = 32, w: int = 40) -> np.ndarray:
    return np.repeat((np.arange(n, dtype=np.uint8) * STEP)[:, None, None, None], h * w * 3, 1).reshape(n, h, w, 3)


def clip_ids(clip: torch.Tensor) -> list[int]:
    """(3, T, H, W) clip of flat numbered frames -> the source frame index of each of its T frames."""
    return (clip.float().mean(dim=(0, 2, 3)) / STEP).round().long().tolist()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    good = [str(write_video(d / f"good{i}.mp4", numbered_frames(40 + 4 * i), fps=25)) for i in range(3)]
    short = str(write_video(d / "short.mp4", numbered_frames(5)))
    corrupt = d / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(3000))
    data = Path(good[0]).read_bytes()
    truncated = d / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    return {"good": good, "short": short, "corrupt": str(corrupt), "truncated": str(truncated),
            "missing": str(d / "missing.mp4")}


# ----------------------------------------------------------------------------------------------- sampling


def test_train_indices_have_the_stride_and_a_random_start():
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(200):
        idx = train_indices(40, 8, 4, g)
        assert idx.shape == (8,) and (idx.diff() == 4).all() and idx[0] >= 0 and idx[-1] < 40
        starts.add(int(idx[0]))
    assert starts == set(range(40 - clip_span(8, 4) + 1))  # every start in [0, 40 - 29] is drawn


def test_short_videos_shrink_the_stride_then_are_too_short():
    g = torch.Generator().manual_seed(0)
    assert fitted_stride(20, 8, 4) == 2
    idx = train_indices(20, 8, 4, g)
    assert (idx.diff() == 2).all() and idx[-1] < 20
    assert torch.equal(train_indices(8, 8, 4, g), torch.arange(8))
    with pytest.raises(TooShortError, match="7 frames, need at least 8"):
        train_indices(7, 8, 4, g)
    spread = train_indices(4, 8, 4, g, min_frames=4)  # allowed below num_frames: each frame used twice
    assert spread.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_eval_indices_centre_and_spread():
    assert eval_indices(41, 8, 4, 1).tolist() == [list(range(6, 35, 4))]  # slack 12 -> start 6
    three = eval_indices(41, 8, 4, 3)
    assert three[:, 0].tolist() == [0, 6, 12] and three[-1, -1] == 40


# ----------------------------------------------------------------------------------------------- transforms


def test_multiscale_crop_sizes_and_positions():
    g = torch.Generator().manual_seed(0)
    index_of = {int(60 * s): k for k, s in enumerate(SCALES)}  # base = min(60, 100); sizes 60, 52, 45, 39
    seen = set()
    for _ in range(400):
        top, left, ch, cw = multiscale_crop_params(60, 100, 32, SCALES, g)
        assert ch in index_of and cw in index_of
        assert abs(index_of[ch] - index_of[cw]) <= 1  # max_distort = 1
        hs, ws = (60 - ch) // 4, (100 - cw) // 4
        assert top in {0, hs, 2 * hs, 3 * hs, 4 * hs} and left in {0, ws, 2 * ws, 3 * ws, 4 * ws}
        assert top + ch <= 60 and left + cw <= 100
        if hs > 0:
            seen.add((top // hs, left // ws))
    assert len(seen) == 13  # all fixed positions are used


def test_train_transform_applies_one_crop_to_every_frame_and_flips_half():
    frame = torch.arange(48 * 64, dtype=torch.float32).view(48, 64).remainder(251).to(torch.uint8)
    video = frame.expand(3, 4, 48, 64).contiguous()  # (3, T, H, W), every frame identical
    flips = 0
    for seed in range(40):
        out = train_transform(video, 32, SCALES, flip=True, generator=torch.Generator().manual_seed(seed))
        assert out.shape == (3, 4, 32, 32) and out.dtype == torch.uint8
        assert (out == out[:, :1]).all()  # the same crop in every frame
        again = train_transform(video, 32, SCALES, flip=True, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(out, again)
        no_flip = train_transform(video, 32, SCALES, flip=False, generator=torch.Generator().manual_seed(seed))
        flips += int(not torch.equal(out, no_flip))
        if not torch.equal(out, no_flip):
            assert torch.equal(out, no_flip.flip(-1))
    assert 10 <= flips <= 30


def test_spatial_views_short_side_resize_and_crops_along_the_long_side():
    cols = torch.arange(96, dtype=torch.uint8).view(1, 1, 1, 96).expand(3, 2, 48, 96).contiguous()
    views = spatial_views(cols, 24, 3)  # resized to 24 x 48, crops at columns 0, 12, 24
    assert views.shape == (3, 3, 2, 24, 24)
    left_cols = views[:, 0, 0, 0, 0].float()
    assert left_cols[0] < left_cols[1] < left_cols[2]
    assert abs(left_cols[1].item() - 24.5) <= 1.5 and left_cols[2].item() >= 47
    assert spatial_views(cols, 24, 1).shape == (1, 3, 2, 24, 24)


# ----------------------------------------------------------------------------------------------- dataset


def _dataset(paths, **kw):
    entries = [VideoEntry(p, i) for i, p in enumerate(paths)]
    args = dict(num_frames=8, sampling_rate=4, size=32, train=True, flip=True, seed=3)
    args.update(kw)
    return VideoClipDataset(entries, **args)


def test_items_are_a_pure_function_of_seed_epoch_index(videos):
    a, b = _dataset(videos["good"]), _dataset(videos["good"])
    first = [a[i]["video"] for i in range(3)]
    assert all(v.shape == (3, 8, 32, 32) and v.dtype == torch.uint8 for v in first)
    assert all(torch.equal(b[i]["video"], first[i]) for i in (2, 0, 1))  # another instance, another order
    b.set_epoch(1)
    assert torch.equal(b[0]["video"], a[(1, 0)]["video"])  # (epoch, index) keys for persistent workers
    assert not all(torch.equal(b[i]["video"], first[i]) for i in range(3))  # a new epoch draws new clips
    assert not torch.equal(_dataset(videos["good"], seed=4)[0]["video"], first[0])


def test_frames_follow_the_stride(videos):
    ds = _dataset(videos["good"], crop_scales=(1.0,), flip=False)
    for i in range(3):
        ids = clip_ids(ds[i]["video"])
        assert all(d == 4 for d in np.diff(ids)) and ids[0] >= 0 and ids[-1] < 40 + 4 * i


def test_worker_count_does_not_change_batches(videos):
    ds = _dataset(videos["good"])
    ds.set_epoch(2)
    batches = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers, collate_fn=collate)
        batches.append(torch.cat([b["video"] for b in loader]))
    assert torch.equal(batches[0], batches[1])


def test_multiple_samples_from_one_decode_and_collate(videos):
    ds = _dataset(videos["good"], num_samples=2, crop_scales=(1.0,), flip=False)
    item = ds[1]
    assert item["video"].shape == (2, 3, 8, 32, 32)
    batch = collate([ds[0], item])
    assert batch["video"].shape == (4, 3, 8, 32, 32)
    assert batch["label"].tolist() == [0, 0, 1, 1] and batch["index"].tolist() == [0, 0, 1, 1]
    starts = [[clip_ids(ds[(e, 2)]["video"][s])[0] for s in range(2)] for e in range(5)]
    assert all(a == b for a, b in starts)  # the samples share one decoded clip


def test_repeated_augmentation_shares_frames_with_own_crops(videos):
    one = _dataset(videos["good"], num_samples=1)
    four = _dataset(videos["good"], num_samples=4, crop_scales=SCALES)
    for key in [(0, 0), (1, 2), (3, 1)]:
        clips = four[key]["video"]  # (4, 3, 8, 32, 32)
        assert clips.shape == (4, 3, 8, 32, 32)
        assert torch.equal(clips[0], one[key]["video"])  # sample 0 is the num_samples=1 clip
        assert len({tuple(clip_ids(c)) for c in clips}) == 1  # one start for all samples
        assert torch.equal(clips, _dataset(videos["good"], num_samples=4)[key]["video"])  # deterministic


def test_repeated_augmentation_gives_each_sample_its_own_crop(tmp_path):
    texture = np.random.default_rng(0).integers(0, 255, (1, 48, 64, 3), dtype=np.uint8).repeat(40, 0)
    path = str(write_video(tmp_path / "texture.mp4", texture, fps=25))  # flat frames would hide the crops
    ds = VideoClipDataset([VideoEntry(path, 0)], 8, 4, 32, train=True, num_samples=4, flip=True, seed=0)
    clips = ds[0]["video"]  # (4, 3, 8, 32, 32)
    assert sum(not torch.equal(clips[a], clips[b]) for a in range(4) for b in range(a + 1, 4)) >= 5


def test_per_sample_start_draws_a_start_per_sample(videos):
    ds = _dataset(videos["good"], num_samples=2, per_sample_start=True, crop_scales=(1.0,), flip=False)
    starts = [[clip_ids(ds[(e, 2)]["video"][s])[0] for s in range(2)] for e in range(6)]
    assert any(a != b for a, b in starts)
    for e in range(6):  # each sample is its own stride-4 clip
        for clip in ds[(e, 1)]["video"]:
            assert all(d == 4 for d in np.diff(clip_ids(clip)))


def test_keyframe_starts_lie_within_the_window(tmp_path):
    path = str(write_video(tmp_path / "gop.mp4", numbered_frames(60), fps=25, gop=8))
    from smile_video.data.decode import PyAVReader

    with PyAVReader(path) as reader:
        keys = reader.key_frames
    for window in (0, 2):
        ds = VideoClipDataset([VideoEntry(path, 0)], 8, 4, 32, train=True, crop_scales=(1.0,), seed=1,
                              start_sampling="keyframe", keyframe_window=window, decoder="pyav")
        starts = {clip_ids(ds[(e, 0)]["video"])[0] for e in range(30)}
        allowed = {k + j for k in keys for j in range(window + 1)}
        assert starts <= allowed and len(starts) > 1, (window, starts, keys)
    g = torch.Generator().manual_seed(0)  # keyframes unknown, or none where the clip fits: uniform starts
    from smile_video.data.sampling import keyframe_train_indices
    assert len({int(keyframe_train_indices(60, 8, 4, None, 0, g)[0]) for _ in range(40)}) > 5
    assert len({int(keyframe_train_indices(60, 8, 4, [50], 0, g)[0]) for _ in range(40)}) > 5
    assert {int(keyframe_train_indices(60, 8, 4, [0, 10, 50], 0, g)[0]) for _ in range(40)} == {0, 10}


def test_test_mode_views_are_deterministic(videos):
    ds = _dataset(videos["good"], train=False, test_views=(2, 3), crop_scales=(1.0,))
    v = ds[0]["video"]
    assert v.shape == (6, 3, 8, 32, 32)
    assert torch.equal(v, _dataset(videos["good"], train=False, test_views=(2, 3), seed=99)[0]["video"])
    assert clip_ids(v[0])[0] == 0 and clip_ids(v[3])[-1] == 39  # clip 0 at the start, clip 1 at the end


def test_segments_from_start_and_total(videos):
    entry = VideoEntry(videos["good"][2], 0, start=10, total=30)  # frames [10, 40) of 48
    ds = VideoClipDataset([entry], 8, 4, 32, train=False, crop_scales=(1.0,))
    assert clip_ids(ds[0]["video"]) == list(range(10, 40, 4))
    bad = VideoClipDataset([VideoEntry(videos["good"][0], 0, start=20, total=30)], 8, 4, 32, train=True, max_skips=0)
    with pytest.raises(TooManyBadVideos, match=r"asks for frames \[20, 50\) but only 40"):
        bad[0]


def test_bad_files_are_skipped_named_and_reported(videos, caplog):
    paths = [videos["good"][0], videos["missing"], videos["corrupt"], videos["truncated"], videos["short"],
             videos["good"][1]]
    ds = _dataset(paths)
    with caplog.at_level(logging.WARNING, logger="smile_video.data.dataset"):
        item = ds[1]
    assert item["index"] == 5 and item["label"] == 5
    assert [s.split(": ", 1)[0] for s in item["skipped"]] == paths[1:5]
    for text, word in zip(item["skipped"], ("missing", "cannot open", "truncated", "too short")):
        assert word in text
    for p in paths[1:5]:
        assert any(p in r.getMessage() for r in caplog.records)
    again = _dataset(paths)[1]  # deterministic: a fresh dataset gives the same clip and the same report
    assert torch.equal(again["video"], item["video"]) and again["skipped"] == item["skipped"]
    assert ds[0]["skipped"] == [] and ds[4]["index"] == 5
    batch = collate([ds[i] for i in range(6)])
    assert len(batch["skipped"]) == 4 + 3 + 2 + 1


def test_too_many_bad_files_raise(videos):
    ds = _dataset([videos["missing"], videos["corrupt"], videos["short"], videos["good"][0]], max_skips=2)
    with pytest.raises(TooManyBadVideos, match="3 consecutive videos from index 0 failed") as info:
        ds[0]
    assert videos["corrupt"] in str(info.value) and videos["short"] in str(info.value)
    assert ds[1]["index"] == 3  # only two failures before a good file


def test_build_from_config(videos, tmp_path):
    lst = tmp_path / "train.csv"
    lst.write_text("".join(f"{os.path.basename(p)} {i}\n" for i, p in enumerate(videos["good"])))
    cfg = DataConfig(source="video", train_list=str(lst), data_root=os.path.dirname(videos["good"][0]),
                     sampling_rate=2, num_samples=2)
    ds = build_video_dataset(cfg, num_frames=8, size=32, seed=0)
    assert len(ds) == 3 and ds.sampling_rate == 2 and ds[0]["video"].shape == (2, 3, 8, 32, 32)


def test_constructor_checks_arguments(videos):
    with pytest.raises(ValueError, match="empty"):
        VideoClipDataset([], 8, 4, 32, True)
    with pytest.raises(ValueError, match="unknown decoder"):
        _dataset(videos["good"], decoder="cv2")
    with pytest.raises(ValueError, match="start_sampling"):
        _dataset(videos["good"], start_sampling="scene")
    with pytest.raises(ValueError, match="decoding on 'cuda' needs decoder 'torchcodec'"):
        _dataset(videos["good"], decoder="pyav", decode_device="cuda")
    with pytest.raises(ValueError, match="crop_scales"):
        _dataset(videos["good"], crop_scales=(1.5,))


def test_cached_frames_give_the_same_items_and_decode_each_file_once(videos, monkeypatch):
    import smile_video.data.dataset as dataset_module

    plain = _dataset(videos["good"], num_samples=2)
    cached = _dataset(videos["good"], num_samples=2, cache_frames=True)
    opened: list[str] = []
    real_open = dataset_module.open_video
    monkeypatch.setattr(dataset_module, "open_video", lambda path, *a: opened.append(path) or real_open(path, *a))
    for epoch in (0, 1):
        for i in range(3):
            assert torch.equal(cached[(epoch, i)]["video"], plain[(epoch, i)]["video"])
    assert sorted(set(opened)) == sorted(videos["good"])
    assert len(opened) == 3 + 6  # the cached dataset opened each file once, the plain one every time
    entry = VideoEntry(videos["good"][2], 0, start=10, total=30)
    evals = [VideoClipDataset([entry], 8, 4, 32, train=False, cache_frames=c)[0]["video"] for c in (False, True)]
    assert torch.equal(evals[0], evals[1]) and clip_ids(evals[1]) == list(range(10, 40, 4))
