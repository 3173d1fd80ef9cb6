"""The pretraining engine end to end at a tiny size: strategies, resume after SIGKILL, DDP, bad data, NaN stop."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from smile_video.config import PretrainJob, load_config
from smile_video.engine.checkpoints import checkpoint_dirs
from smile_video.engine.pretrain import TrainingError, pretrain
from smile_video.runlog import read_metrics

# 32 px, 4 frames: a 2 x 2 x 2 token grid; the embedded teacher's stride-16 grid matches it.
TINY = ["model.preset=tiny", "model.img_size=32", "model.num_frames=4", "mask.ratio=0.75", "data.epoch_size=16",
        "train.batch_size=4", "train.lr=1e-3", "train.log_every=1", "run.quiet=true"]


def job(out: Path, *extra: str) -> PretrainJob:
    video = "data.source=video" in extra  # an epoch is then the list: data.epoch_size (synthetic only) is not set
    base = [o for o in TINY if not (video and o.startswith("data.epoch_size="))]
    return load_config(PretrainJob, overrides=[*base, f"run.out_dir={out}", *extra])


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "smile_video", "pretrain", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_progressive_switches_stage_at_configured_step_and_writes_outputs(tmp_path):
    out = tmp_path / "run"
    pretrain(job(out, "train.strategy=progressive", "train.stage1_epochs=2", "train.stage2_epochs=1"))
    records = list(read_metrics(out / "metrics.jsonl"))
    starts = {r["stage"]: r["step"] for r in records if r.get("event") == "stage_start"}
    assert starts == {"stage1": 0, "stage2": 8}  # 16 clips / batch 4 = 4 steps per epoch
    stages = [r["stage"] for r in records if "loss" in r]
    assert stages == ["stage1"] * 8 + ["stage2"] * 4
    # a checkpoint at the end of each stage (keep_last=2 keeps both)
    assert [int(p.name.split("_")[1]) for p in checkpoint_dirs(out)] == [8, 12]
    for name in ("config.yaml", "loss_curve.png", "model/model.safetensors", "model/config.json"):
        assert (out / name).is_file(), name
    last = [r for r in records if "loss" in r][-1]
    for key in ("lr", "clips_per_s", "data_wait", "skipped", "epoch"):
        assert key in last
    assert last["epoch"] == pytest.approx(3.0)


def test_loss_falls_on_the_embedded_default(tmp_path):
    out = tmp_path / "run"
    pretrain(job(out, "train.strategy=single", "train.epochs=12", "data.epoch_size=32", "train.batch_size=8",
                 "train.lr=2e-3", "train.warmup_epochs=1"))
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert len(losses) == 48
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    assert last < 0.8 * first, (first, last)


def test_mixed_strategy_and_tube_masking_run(tmp_path):
    out = tmp_path / "run"
    pretrain(job(out, "train.strategy=mixed", "train.epochs=1", "mask.kind=tube"))
    assert (out / "model" / "model.safetensors").is_file()


def test_freeze_patch_embed_keeps_the_random_projection_and_trains_the_rest(tmp_path):
    from smile_video.models import PretrainModel

    runs = {}
    for frozen in (False, True):
        out = tmp_path / f"frozen_{frozen}"
        pretrain(job(out, "train.strategy=single", "train.epochs=1", "train.seed=3",
                     f"train.freeze_patch_embed={str(frozen).lower()}"))
        runs[frozen] = weights(out)
    cfg = job(tmp_path / "unused").model
    torch.manual_seed(3)  # the engine's initial weights: PretrainModel right after torch.manual_seed(train.seed)
    init = PretrainModel(cfg, target_dim=runs[True]["decoder.head.weight"].shape[0]).state_dict()
    for key in ("encoder.patch_embed.proj.weight", "encoder.patch_embed.proj.bias"):
        assert torch.equal(runs[True][key], init[key]), key  # frozen: bit for bit the random init
        assert not torch.equal(runs[False][key], init[key]), key  # the paper's recipe trains it
    for key in ("encoder.blocks.0.attn.qkv.weight", "decoder.head.weight"):
        assert not torch.equal(runs[True][key], init[key]), key


def test_sigkill_then_resume_matches_uninterrupted_run_bitwise(tmp_path):
    common = [*TINY, "train.strategy=progressive", "train.stage1_epochs=8", "train.stage2_epochs=4",
              "train.save_every=2", "train.keep_last=3"]
    ref = tmp_path / "ref"
    pretrain(load_config(PretrainJob, overrides=[*common, f"run.out_dir={ref}"]))

    out = tmp_path / "killed"
    rng = np.random.default_rng(int(time.time()))
    kill_after = int(rng.integers(3, 40))  # total: 48 steps
    proc = cli(*common, f"run.out_dir={out}")
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        steps = [r["step"] for r in read_metrics(metrics) if "loss" in r] if metrics.exists() else []
        if steps and steps[-1] >= kill_after:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(r["step"] for r in read_metrics(metrics) if "loss" in r)
    assert killed_at < 48
    resumed = cli(*common, f"run.out_dir={out}", "--resume", "auto")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    events = [r for r in read_metrics(metrics) if r.get("event") == "resume"]
    assert events and events[-1]["step"] <= killed_at
    a, b = weights(ref), weights(out)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_two_process_ddp_matches_one_process_with_same_global_batch(tmp_path):
    common = [*TINY, "train.strategy=single", "train.epochs=2", "train.batch_size=4", "train.micro_batch_size=2"]
    one = tmp_path / "one"
    pretrain(load_config(PretrainJob, overrides=[*common, f"run.out_dir={one}"]))  # 1 process, 2 accumulation steps
    two = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "smile_video", "pretrain", *common, f"run.out_dir={two}"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    check = [r for r in read_metrics(two / "metrics.jsonl") if r.get("event") == "ddp_check"]
    assert check and check[0]["world_size"] == 2
    assert check[0]["max_param_divergence"] == 0.0  # ranks hold identical parameters
    a, b = weights(one), weights(two)
    # Equal up to the order of the gradient reduction. Adam divides by sqrt(v), so an entry whose gradient is ~0 can
    # move by up to ~lr per step on a rounding difference: bound the weights by the update scale (peak lr 1.6e-5).
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5, msg=key)
    losses_one = [r["loss"] for r in read_metrics(one / "metrics.jsonl") if "loss" in r]
    losses_two = [r["loss"] for r in read_metrics(two / "metrics.jsonl") if "loss" in r]
    np.testing.assert_allclose(losses_one, losses_two, rtol=1e-5)


def test_non_finite_loss_stops_with_message_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = job(out, "train.strategy=single", "train.epochs=2", "train.save_every=2")
    import smile_video.engine.step as step_module

    real = step_module.normalize_targets
    calls = {"n": 0}

    def poisoned(targets, mode):
        calls["n"] += 1
        t = real(targets, mode)
        return t * float("nan") if calls["n"] > 5 else t

    monkeypatch.setattr(step_module, "normalize_targets", poisoned)
    with pytest.raises(TrainingError, match="non-finite loss.*step 5"):
        pretrain(cfg)
    dirs = checkpoint_dirs(out)
    assert [d.name for d in dirs] == ["step_00000002", "step_00000004"]
    state = torch.load(dirs[-1] / "training_state.pt", weights_only=True)
    assert state["step"] == 4
    finite = load_file(str(dirs[-1] / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in finite.values())


def test_bad_videos_are_skipped_named_and_counted(tmp_path, caplog):
    from smile_video.data.video_io import write_video

    root = tmp_path / "videos"
    root.mkdir()
    g = np.random.default_rng(0)
    lines = []
    for i in range(6):
        write_video(root / f"ok{i}.mp4", g.integers(0, 255, (12, 40, 40, 3), dtype=np.uint8), fps=8)
        lines.append(f"ok{i}.mp4 0")
    (root / "corrupt.mp4").write_bytes(os.urandom(2048))
    write_video(root / "short.mp4", g.integers(0, 255, (2, 40, 40, 3), dtype=np.uint8), fps=8)
    lines[1:1] = ["missing.mp4 0", "corrupt.mp4 0", "short.mp4 0"]
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    cfg = job(out, "data.source=video", f"data.train_list={root / 'train.csv'}", f"data.data_root={root}",
              "data.sampling_rate=2", "train.strategy=progressive", "train.stage1_epochs=2", "train.stage2_epochs=2",
              "train.batch_size=3")
    with caplog.at_level(logging.WARNING, logger="smile_video"):
        pretrain(cfg)
    messages = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    for name in ("missing.mp4", "corrupt.mp4", "short.mp4"):
        assert name in messages
    records = list(read_metrics(out / "metrics.jsonl"))
    assert [r for r in records if "loss" in r][-1]["skipped"] > 0
    assert (out / "model" / "model.safetensors").is_file()
    assert json.loads((out / "model" / "config.json").read_text())


def test_data_workers_do_not_change_training(tmp_path):
    runs = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        pretrain(job(out, "train.strategy=single", "train.epochs=1", f"data.num_workers={workers}"))
        runs[workers] = weights(out)
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[2][key]), key


@pytest.mark.parametrize("workers", [0, 1])
def test_too_many_bad_videos_ends_the_cli_with_its_message_not_a_traceback(tmp_path, capsys, workers):
    from smile_video.cli import main

    root = tmp_path / "videos"
    root.mkdir()
    for i in range(3):
        (root / f"bad{i}.mp4").write_bytes(os.urandom(1024))
    (root / "train.csv").write_text("".join(f"bad{i}.mp4 0\n" for i in range(3)))
    base = [o for o in TINY if not o.startswith("data.epoch_size=")]  # a video list sets the epoch
    code = main(["pretrain", *base, f"run.out_dir={tmp_path / 'run'}", "data.source=video",
                 f"data.train_list={root / 'train.csv'}", f"data.data_root={root}", "data.max_skips=1",
                 f"data.num_workers={workers}", "train.strategy=single", "train.epochs=1", "train.batch_size=2"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("smile pretrain: error: 2 consecutive videos from index")
    assert "bad" in err and "Traceback" not in err


@pytest.mark.parametrize("extra", [["train.strategy=single"], ["teacher.visible_weight=0.5", "train.strategy=mixed"]])
def test_compile_traces_student_and_teacher_as_one_graph_each_and_trains_the_same(tmp_path, monkeypatch, extra):
    """train.compile=true compiles the student and the teacher with train.compile_mode; the step's calls have static
    shapes, so each traces as one graph (fullgraph=True would raise at a graph break), and training is unchanged
    (dynamo's eager backend: the same kernels, so the same weights bit for bit)."""
    eager = tmp_path / "eager"
    pretrain(job(eager, "train.epochs=1", *extra))
    compiled_what = []
    real_compile = torch.compile

    def strict_compile(module, mode=None, **kw):
        compiled_what.append((type(module).__name__, mode))
        return real_compile(module, fullgraph=True, backend="eager")

    monkeypatch.setattr(torch, "compile", strict_compile)
    torch._dynamo.reset()
    out = tmp_path / "compiled"
    pretrain(job(out, "train.epochs=1", "train.compile=true", "train.compile_mode=max-autotune", *extra))
    torch._dynamo.reset()
    assert [mode for _, mode in compiled_what] == ["max-autotune", "max-autotune"]
    assert compiled_what[0][0] == "PretrainModel"
    a, b = weights(eager), weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_motion_is_drawn_from_the_steps_own_generator_on_the_cpu():
    """On the CPU the motion continues the step's generator (the stream every documented CPU run used); a GPU step
    draws it from a host generator with the slot's seed (tests/test_cuda.py)."""
    from smile_video.engine.step import motion_generator

    gen = torch.Generator().manual_seed(5)
    assert motion_generator(gen) is gen
