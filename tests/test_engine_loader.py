"""Feeding the pretraining step: worker count, pinning, the run-long sampler, and `smile pretrain` on an mp4 list
(repeated augmentation, throughput report, bitwise resume)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from smile_video.config import DataConfig, PretrainJob, load_config
from smile_video.engine.checkpoints import checkpoint_dirs
from smile_video.engine.loader import MAX_AUTO_WORKERS, loader_options, resolve_workers
from smile_video.engine.pretrain import pretrain
from smile_video.engine.sampler import RunBatchSampler, StepBatchSampler
from smile_video.runlog import read_metrics


def test_auto_workers_decode_on_every_core_but_one():
    videos = DataConfig(source="video", train_list="x.csv")
    assert resolve_workers(videos, cpus=8) == 7
    assert resolve_workers(videos, cpus=1) == 1
    assert resolve_workers(videos, cpus=64) == MAX_AUTO_WORKERS
    assert resolve_workers(DataConfig(), cpus=8) == 0  # synthetic noise: made in the training process
    assert resolve_workers(DataConfig(train_list="x.csv", background="frame"), cpus=8) == 7
    assert resolve_workers(DataConfig(source="video", train_list="x.csv", num_workers=3), cpus=8) == 3


def test_loader_options_pin_on_cuda_and_spawn_for_gpu_decoding(monkeypatch):
    videos = DataConfig(source="video", train_list="x.csv", prefetch_factor=3)
    cpu = loader_options(videos, torch.device("cpu"), cpus=4)
    assert cpu == {"num_workers": 3, "pin_memory": False, "prefetch_factor": 3}
    assert loader_options(videos, torch.device("cuda"), cpus=4)["pin_memory"] is True
    assert loader_options(DataConfig(), torch.device("cuda"), cpus=4) == {"num_workers": 0, "pin_memory": True}
    gpu_decode = DataConfig(source="video", train_list="x.csv", decode_device="cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="data.decode_device=cuda: no CUDA device"):
        loader_options(gpu_decode, torch.device("cpu"), cpus=4)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    opts = loader_options(gpu_decode, torch.device("cuda"), cpus=4)
    assert opts["multiprocessing_context"] == "spawn" and opts["pin_memory"] is False  # frames are on the GPU


@pytest.mark.parametrize("start", [0, 3, 5, 7])
def test_run_sampler_is_the_per_pass_samplers_end_to_end(start):
    n, per_slot, accum, passes = 10, 2, 2, 3  # 10 items, 4 a step: 2 steps a pass
    expected = []
    for p in range(passes):
        for step_batches in StepBatchSampler(n, per_slot, 1, 0, accum, 5, p):
            expected.append([(p, i) for i in step_batches])
    got = list(RunBatchSampler(n, per_slot, 1, 0, accum, 5, passes, start_step=start))
    assert got == expected[start * accum:] and len(RunBatchSampler(n, per_slot, 1, 0, accum, 5, passes, start)) == \
        len(got)


@pytest.fixture(scope="module")
def mp4_list(tmp_path_factory) -> Path:
    from smile_video.data.video_io import write_video

    root = tmp_path_factory.mktemp("mp4")
    g = np.random.default_rng(0)
    for i in range(6):
        write_video(root / f"v{i}.mp4", g.integers(0, 255, (20, 40, 48, 3), dtype=np.uint8), fps=10, gop=6)
    (root / "train.csv").write_text("".join(f"v{i}.mp4 {i % 2}\n" for i in range(6)))
    return root / "train.csv"


def _job(out: Path, lst: Path, *extra: str) -> PretrainJob:
    return load_config(PretrainJob, overrides=[
        "model.preset=tiny", "model.img_size=32", "model.num_frames=4", "mask.ratio=0.75", "data.source=video",
        f"data.train_list={lst}", f"data.data_root={lst.parent}", "data.sampling_rate=2", "data.num_samples=2",
        "train.strategy=single", "train.epochs=6", "train.batch_size=4", "train.lr=1e-3", "train.save_every=2",
        "train.keep_last=10", "run.quiet=true", f"run.out_dir={out}", *extra])


def test_pretrain_on_mp4s_reports_throughput_and_resumes_bitwise(tmp_path, mp4_list):
    ref = tmp_path / "ref"
    pretrain(_job(ref, mp4_list, "data.num_workers=1"))  # 3 passes x 3 steps of 2 videos x 2 samples
    records = list(read_metrics(ref / "metrics.jsonl"))
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 9 and all(r["clips_per_s"] > 0 and 0 <= r["data_wait"] <= 1 for r in steps)
    summary = [r for r in records if r.get("event") == "throughput"]
    assert len(summary) == 1 and summary[0]["clips_per_s"] > 0 and 0 <= summary[0]["data_wait"] <= 1
    assert summary[0]["num_workers"] == 1
    # the steady rate starts at the first log line (log_every=1: step 1), so it leaves out the first step's start-up
    assert summary[0]["steady_from_step"] == 1
    assert summary[0]["clips_per_s_steady"] > 0 and 0 <= summary[0]["data_wait_steady"] <= 1

    # Interrupted after step 4 (a checkpoint mid-pass): resuming in-process, with no workers, gives the same weights.
    cut = tmp_path / "cut"
    shutil.copytree(ref, cut)
    for d in checkpoint_dirs(cut):
        if int(d.name.split("_")[-1]) > 4:
            shutil.rmtree(d)
    shutil.rmtree(cut / "model")
    pretrain(_job(cut, mp4_list, "data.num_workers=0", "run.resume=auto"))
    assert [r["step"] for r in read_metrics(cut / "metrics.jsonl") if r.get("event") == "resume"] == [4]
    a, b = load_file(str(ref / "model" / "model.safetensors")), load_file(str(cut / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
