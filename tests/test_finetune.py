"""Finetuning: layer-wise lr decay, mixup / cutmix, video RandAugment, `smile finetune` end to end, per-epoch
checkpoints and resume."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import write_two_class_videos
from safetensors.torch import load_file

from smile_video.cli import main
from smile_video.config import ConfigError, FinetuneJob, ModelConfig, load_config
from smile_video.engine.checkpoints import checkpoint_dirs
from smile_video.eval.finetune import build_classifier
from smile_video.eval.layer_decay import layer_decay_param_groups, layer_id
from smile_video.eval.mixup import mix_video_batch, smooth_one_hot, soft_cross_entropy
from smile_video.eval.video_augment import OPS, rand_augment_clip
from smile_video.runlog import read_metrics

TINY = dict(img_size=32, num_frames=4, embed_dim=32, depth=2, num_heads=2)


def test_layer_decay_groups_have_the_right_scales():
    cfg = ModelConfig(**TINY)
    model, _ = build_classifier(cfg, num_classes=5, checkpoint=None, drop_path=0.1)
    groups = layer_decay_param_groups(model, weight_decay=0.05, layer_decay=0.75, depth=cfg.depth)
    by_name = {n: g for g in groups for n in g["names"]}
    assert set(by_name) == {n for n, _ in model.named_parameters()}  # every parameter in exactly one group
    assert sum(len(g["names"]) for g in groups) == len(by_name)
    assert by_name["head.weight"]["lr_scale"] == 1.0 and by_name["fc_norm.weight"]["lr_scale"] == 1.0
    assert by_name["patch_embed.proj.weight"]["lr_scale"] == pytest.approx(0.75 ** 3)
    assert by_name["blocks.0.attn.qkv.weight"]["lr_scale"] == pytest.approx(0.75 ** 2)
    assert by_name["blocks.1.mlp.fc1.weight"]["lr_scale"] == pytest.approx(0.75)
    assert by_name["blocks.1.mlp.fc1.weight"]["weight_decay"] == 0.05
    assert by_name["blocks.1.mlp.fc1.bias"]["weight_decay"] == 0.0
    assert by_name["blocks.0.norm1.weight"]["weight_decay"] == 0.0
    assert layer_id("blocks.11.attn.proj.weight", 12) == 12 and layer_id("head.bias", 12) == 13


@pytest.mark.parametrize("mixup,cutmix", [(0.8, 1.0), (0.8, 0.0), (0.0, 1.0)])
def test_mixed_targets_sum_to_one_and_match_the_pixels(mixup, cutmix):
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        video = torch.stack([torch.full((3, 2, 8, 8), float(i)) for i in range(4)])  # sample i is constant i
        labels = torch.tensor([0, 1, 2, 3])
        mixed, target = mix_video_batch(video, labels, 4, g, mixup, cutmix, smoothing=0.1)
        torch.testing.assert_close(target.sum(1), torch.ones(4))
        assert target.shape == (4, 4) and mixed.shape == video.shape
        # The weight of the partner (sample 3 - i) in the pixels equals its weight in the target (minus smoothing).
        lam = 1.0 - (mixed[0] - 0.0).mean().item() / 3.0  # sample 0 mixed with sample 3
        off = 0.1 / 4
        assert target[0, 0].item() == pytest.approx(lam * (1 - 0.1) + off, abs=1e-5)
        if cutmix and not mixup:
            values = mixed[0].unique()
            assert set(values.tolist()) <= {0.0, 3.0}  # a pasted box, not a blend
            torch.testing.assert_close(mixed[0, :, 0], mixed[0, :, 1])  # the same box in every frame


def test_smoothing_and_soft_cross_entropy():
    y = smooth_one_hot(torch.tensor([2, 0]), 4, 0.1)
    torch.testing.assert_close(y[0], torch.tensor([0.025, 0.025, 0.925, 0.025]))
    logits = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([2, 0]), label_smoothing=0.1)
    torch.testing.assert_close(soft_cross_entropy(logits, y), expected)


def test_rand_augment_is_identical_across_frames_and_seeded():
    g = torch.Generator().manual_seed(0)
    frame = torch.randint(0, 256, (3, 1, 32, 32), dtype=torch.uint8, generator=g)
    clip = frame.expand(3, 4, 32, 32).contiguous()  # four identical frames
    changed = 0
    for seed in range(20):
        out = rand_augment_clip(clip, torch.Generator().manual_seed(seed), num_ops=2, magnitude=9)
        assert out.shape == clip.shape and out.dtype == torch.uint8
        for t in range(1, 4):
            assert torch.equal(out[:, t], out[:, 0]), "every frame must get the same transform"
        changed += int(not torch.equal(out, clip))
        again = rand_augment_clip(clip, torch.Generator().manual_seed(seed), num_ops=2, magnitude=9)
        assert torch.equal(out, again)
    assert changed >= 10
    for name, op in OPS.items():  # every op keeps the clip's shape and dtype
        out = op(clip.permute(1, 0, 2, 3), 0.9, torch.Generator().manual_seed(0))
        assert out.shape == (4, 3, 32, 32) and out.dtype == torch.uint8, name


@pytest.fixture(scope="module")
def mp4_lists(tmp_path_factory):
    """Six tiny mp4 files in two classes (bright moving square / dark still one), VideoMAE-format lists."""
    root = tmp_path_factory.mktemp("videos")
    lines = write_two_class_videos(root, 6, base=40, step=10, top=10, still_x=10, still_value=90)
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("\n".join(lines[:4]) + "\n")
    (root / "test.txt").write_text("\n".join(lines[1:4]) + "\n")
    return root


def test_finetune_cli_runs_on_mp4_files_and_writes_metrics(mp4_lists, tmp_path):
    out = tmp_path / "ft"
    rc = main(["finetune", "--random-init", "--out", str(out), "--quiet",
               f"finetune.train_list={mp4_lists / 'train.txt'}", f"finetune.val_list={mp4_lists / 'val.txt'}",
               "finetune.epochs=2", "finetune.batch_size=2", "finetune.warmup_epochs=1", "finetune.sampling_rate=2",
               "finetune.test_clips=2", "finetune.test_crops=2", "finetune.eval_every=1",
               *[f"model.{k}={v}" for k, v in TINY.items()]])
    assert rc == 0
    records = list(read_metrics(out / "metrics.jsonl"))
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert len(train) == 6 and [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]  # 3 steps per epoch x 2 epochs
    lrs = [r["lr"] for r in train]
    peak = 1e-3 * 2 / 256  # finetune.lr * batch / 256
    assert lrs[0] == 0.0 and lrs[0] < lrs[1] < lrs[2] < lrs[3]  # linear warmup over 1 epoch (3 steps)
    assert lrs[3] == pytest.approx(peak) and lrs[3] > lrs[4] > lrs[5]  # then cosine decay
    assert all(r["loss"] > 0 for r in train)
    assert len(evals) == 2 and evals[-1]["num_videos"] == 4
    results = json.loads((out / "results.json").read_text())
    assert results["num_classes"] == 2 and results["final"]["top1"] == evals[-1]["top1"]
    assert (out / "model.safetensors").stat().st_size > 0 and (out / "config.yaml").is_file()


def test_finetune_cli_rejects_a_missing_list(tmp_path):
    assert main(["finetune", "--random-init", "--out", str(tmp_path / "x"), "--quiet"]) == 1
    assert main(["finetune", "--out", str(tmp_path / "x"), "--quiet", "finetune.epochs=1"]) == 1  # no encoder


def test_classifier_starts_from_a_saved_encoder(tmp_path):
    from smile_video.checkpoint import save_model
    from smile_video.models import VideoViTEncoder

    cfg = ModelConfig(**TINY)
    torch.manual_seed(3)
    encoder = VideoViTEncoder(cfg)
    save_model(encoder, cfg, tmp_path / "enc")
    model, out_cfg = build_classifier(cfg, num_classes=7, checkpoint=str(tmp_path / "enc"), drop_path=0.1)
    assert out_cfg.drop_path == 0.1 and model.head.weight.shape == (7, cfg.embed_dim)
    enc_sd = encoder.state_dict()
    for name, value in model.state_dict().items():
        if name.startswith(("blocks.", "patch_embed.")):
            torch.testing.assert_close(value, enc_sd[name])
    fresh, _ = build_classifier(cfg, num_classes=7, checkpoint=None, drop_path=0.1)
    assert not torch.equal(fresh.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.weight)


# Table 17: (epochs, batch, flip) per column; the rest is shared.
TABLE17 = {"ssv2": (40, 32, False), "k400": (100, 16, True), "severe": (100, 16, True)}


@pytest.mark.parametrize("name", sorted(TABLE17))
def test_finetune_recipes_follow_table17(name):
    from pathlib import Path

    from smile_video.config import FinetuneJob, load_config

    f = load_config(FinetuneJob, [str(Path(__file__).parent.parent / "configs" / "finetune" / f"{name}.yaml")]).finetune
    assert (f.epochs, f.batch_size, f.flip) == TABLE17[name]
    assert (f.lr, f.weight_decay, f.betas, f.layer_decay, f.warmup_epochs) == (1e-3, 0.05, [0.9, 0.999], 0.75, 5.0)
    assert (f.randaug_m, f.randaug_mstd, f.label_smoothing, f.mixup, f.cutmix, f.drop_path) == (
        9.0, 0.5, 0.1, 0.8, 1.0, 0.1)


def test_finetune_under_torchrun_with_two_ranks(mp4_lists, tmp_path):
    """DDP on CPU (gloo): both ranks train, the multi-view scores of the val videos are gathered from both."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "smile_video", "finetune", "--random-init", "--out", str(out), "--quiet",
           f"finetune.train_list={mp4_lists / 'train.txt'}", f"finetune.val_list={mp4_lists / 'val.txt'}",
           "finetune.epochs=1", "finetune.head_epochs=1", "finetune.batch_size=4", "finetune.sampling_rate=2",
           "finetune.test_clips=2", "finetune.test_crops=1", "model.img_size=32", "model.num_frames=4",
           "model.embed_dim=32", "model.depth=1", "model.num_heads=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    # 6 videos // global batch 4 = 1 step an epoch: one head-only (LP-FT), one full
    assert results["world_size"] == 2 and results["steps"] == 2
    assert results["final"]["num_videos"] == 4  # val videos 0..3: split over the ranks, gathered


def crash_on_call(monkeypatch, module, name: str, n: int) -> None:
    """Make `module.name` raise "simulated crash" on its n-th call (a process dying there); undo with
    monkeypatch.undo()."""
    real, calls = getattr(module, name), {"n": 0}

    def crash(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, crash)


def finetune_args(lists, out, *extra: str) -> list[str]:
    """A tiny finetuning run: 6 videos, batch 2 = 3 steps per epoch; drop path, RandAugment, erasing and mixup on."""
    return ["finetune", "--random-init", "--out", str(out), "--quiet",
            f"finetune.train_list={lists / 'train.txt'}", f"finetune.val_list={lists / 'val.txt'}",
            "finetune.batch_size=2", "finetune.warmup_epochs=1", "finetune.sampling_rate=2", "finetune.test_clips=1",
            "finetune.test_crops=1", "finetune.reprob=0.5", "finetune.drop_path=0.2",
            *[f"model.{k}={v}" for k, v in TINY.items()], *extra]


@pytest.mark.parametrize("crash_in", ["train", "eval"])
def test_resume_after_a_crash_matches_the_uninterrupted_run_bitwise(mp4_lists, tmp_path, monkeypatch, crash_in):
    import smile_video.eval.finetune as ft

    common = ("finetune.epochs=3", "finetune.eval_every=2")
    ref = tmp_path / "ref"
    assert main(finetune_args(mp4_lists, ref, *common, "--resume", "auto")) == 0  # nothing to resume: fresh start
    assert not [r for r in read_metrics(ref / "metrics.jsonl") if r["kind"] == "resume"]
    dirs = checkpoint_dirs(ref)
    assert [d.name for d in dirs] == ["step_00000006", "step_00000009"]  # one per epoch, keep_checkpoints=2
    state = torch.load(dirs[-1] / "training_state.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (3, 9) and [e["epoch"] for e in state["evaluations"]] == [2]

    out = tmp_path / "crashed"
    # train: the process dies at the second step of epoch 2 (half trained); the epoch-1 checkpoint is the newest.
    # eval: it dies in the evaluation after epoch 2, whose checkpoint (written first) lacks that evaluation.
    name, at, expected = {"train": ("task_loss", 5, (1, 3)), "eval": ("evaluate_views", 1, (2, 6))}[crash_in]
    crash_on_call(monkeypatch, ft, name, at)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(finetune_args(mp4_lists, out, *common))
    monkeypatch.undo()
    assert [d.name for d in checkpoint_dirs(out)][-1] == f"step_{expected[1]:08d}"
    assert not (out / "results.json").exists()

    assert main(finetune_args(mp4_lists, out, *common, "--resume", "auto")) == 0
    resumes = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "resume"]
    assert [(r["epoch"], r["step"]) for r in resumes] == [expected]
    a, b = load_file(str(ref / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ref_results = json.loads((ref / "results.json").read_text())
    out_results = json.loads((out / "results.json").read_text())
    assert out_results["evaluations"] == ref_results["evaluations"] and out_results["steps"] == 9
    assert [e["epoch"] for e in out_results["evaluations"]] == [2, 3]


def test_head_epochs_train_only_the_head_then_finetune_everything(mp4_lists, tmp_path):
    """LP-FT: the head-only epochs leave every encoder weight at its init and train fc_norm / head on a cosine from
    the peak lr; the full epochs then start from that head with their own warmup."""
    from smile_video.eval.finetune import build_classifier

    out = tmp_path / "lpft"
    assert main(finetune_args(mp4_lists, out, "finetune.head_epochs=1", "finetune.epochs=2",
                              "finetune.keep_checkpoints=3", "finetune.lr=0.1")) == 0
    train = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["head_only"] for r in train] == [True] * 3 + [False] * 6  # 3 steps an epoch
    lrs = [r["lr"] for r in train]
    peak = 0.1 * 2 / 256
    assert lrs[0] == pytest.approx(peak) and lrs[0] > lrs[1] > lrs[2]  # head: cosine, no warmup
    assert lrs[3] == 0.0 and lrs[3] < lrs[4] < lrs[5] < lrs[6] == pytest.approx(peak)  # full: its own warmup
    cfg = load_config(FinetuneJob, overrides=[*[f"model.{k}={v}" for k, v in TINY.items()]])
    init, _ = build_classifier(cfg.model, 2, None, 0.2, seed=0)
    init = init.state_dict()
    after_head = load_file(str(checkpoint_dirs(out)[0] / "model.safetensors"))  # step 3: the head epoch's end
    final = load_file(str(out / "model.safetensors"))
    encoder = [k for k in init if not k.startswith(("fc_norm.", "head."))]
    assert encoder and all(torch.equal(after_head[k], init[k]) for k in encoder)
    assert not torch.equal(after_head["head.weight"], init["head.weight"])
    assert not torch.equal(final["blocks.0.mlp.fc2.weight"], init["blocks.0.mlp.fc2.weight"])
    assert json.loads((out / "results.json").read_text())["steps"] == 9


@pytest.mark.parametrize("head_epochs", [1, 2])
def test_lpft_resumes_bitwise_across_the_head_only_epochs(mp4_lists, tmp_path, monkeypatch, head_epochs):
    """A crash in the 5th step (the first full epoch, or the second head-only one) resumes from the epoch-1
    checkpoint, whose optimizer state is the one the next epoch steps, to the uninterrupted run's weights."""
    import smile_video.eval.finetune as ft

    common = (f"finetune.head_epochs={head_epochs}", "finetune.epochs=1")
    ref = tmp_path / "ref"
    assert main(finetune_args(mp4_lists, ref, *common)) == 0
    out = tmp_path / "crashed"
    crash_on_call(monkeypatch, ft, "task_loss", 5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(finetune_args(mp4_lists, out, *common))
    monkeypatch.undo()
    assert main(finetune_args(mp4_lists, out, *common, "--resume", "auto")) == 0
    resumes = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "resume"]
    assert [(r["epoch"], r["step"]) for r in resumes] == [(1, 3)]
    a, b = load_file(str(ref / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_centre_output_shifts_every_token_by_the_training_clips_mean(mp4_lists, tmp_path):
    """centre_output: every output token moves by exactly minus the mean pooled feature of the clips, after which
    that mean is zero; `finetune.centre_output=true` applies it once, before the first step, and logs it."""
    from smile_video.data.dataset import VideoClipDataset
    from smile_video.data.normalize import normalize
    from smile_video.engine.distributed import DistInfo
    from smile_video.eval.finetune import centre_output
    from smile_video.eval.finetune_tasks import read_task_list

    cfg = ModelConfig(**TINY)
    model, _ = build_classifier(cfg, 2, None, 0.0, seed=0)
    entries, _ = read_task_list("classification", str(mp4_lists / "train.txt"), "")
    ds = VideoClipDataset(entries, num_frames=cfg.num_frames, sampling_rate=2, size=cfg.img_size, train=False)
    x = normalize(torch.stack([ds[i]["video"] for i in range(len(ds))]))  # (6, 3, T, H, W)
    model.eval()
    with torch.no_grad():
        before = model.forward_tokens(x)  # (6, N, C)
    mean = centre_output(model, ds, DistInfo(), torch.device("cpu"), batch_size=4)
    assert torch.allclose(mean, before.mean(dim=1).mean(dim=0), atol=1e-5) and mean.norm() > 0.1
    with torch.no_grad():
        after = model.forward_tokens(x)
    assert torch.allclose(after, before - mean, atol=1e-5)
    assert after.mean(dim=1).mean(dim=0).abs().max() < 1e-5

    out = tmp_path / "centred"
    assert main(finetune_args(mp4_lists, out, "finetune.epochs=1", "finetune.centre_output=true")) == 0
    logged = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "centre_output"]
    assert len(logged) == 1 and logged[0]["norm"] > 0.1


def test_resume_from_a_missing_or_corrupt_checkpoint_names_the_file(mp4_lists, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(finetune_args(mp4_lists, run, "finetune.epochs=1")) == 0
    (good,) = checkpoint_dirs(run)
    capsys.readouterr()

    def resume_error(path) -> str:
        assert main(finetune_args(mp4_lists, tmp_path / "again", "finetune.epochs=2", "--resume", str(path))) == 1
        return capsys.readouterr().err

    missing = tmp_path / "no_such_checkpoint"
    assert str(missing) in resume_error(missing)
    bad_state = tmp_path / "bad_state"
    shutil.copytree(good, bad_state)
    data = (bad_state / "training_state.pt").read_bytes()
    (bad_state / "training_state.pt").write_bytes(data[: len(data) // 2])  # truncated
    err = resume_error(bad_state)  # its manifest.json finds it before any load
    assert f"{bad_state} is damaged: training_state.pt has" in err
    (bad_state / "manifest.json").unlink()  # a checkpoint from before manifests: the load itself names the file
    err = resume_error(bad_state)
    assert str(bad_state / "training_state.pt") in err and "unreadable" in err
    bad_weights = tmp_path / "bad_weights"
    shutil.copytree(good, bad_weights)
    (bad_weights / "model.safetensors").write_bytes(b"not safetensors")
    assert f"{bad_weights} is damaged: model.safetensors has" in resume_error(bad_weights)
    (bad_weights / "manifest.json").unlink()
    assert str(bad_weights / "model.safetensors") in resume_error(bad_weights)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert str(empty / "training_state.pt") in resume_error(empty)
    # the intact checkpoint, given as a path, resumes into another run directory
    assert main(finetune_args(mp4_lists, tmp_path / "again", "finetune.epochs=2", "--resume", str(good))) == 0
    assert json.loads((tmp_path / "again" / "results.json").read_text())["steps"] == 6


def test_test_list_is_evaluated_after_the_last_epoch_and_survives_a_resume(mp4_lists, tmp_path, monkeypatch):
    """finetune.test_list: the final model is evaluated on it once (results.json `test`, a metrics record), the val
    evaluations are as without it; a crash during the test evaluation resumes to the same numbers."""
    import smile_video.eval.finetune as ft

    common = ("finetune.epochs=2", f"finetune.test_list={mp4_lists / 'test.txt'}")
    ref = tmp_path / "ref"
    assert main(finetune_args(mp4_lists, ref, *common)) == 0
    results = json.loads((ref / "results.json").read_text())
    test = results["test"]
    assert test["epoch"] == 2 and test["num_videos"] == 3 and set(test) >= {"top1", "top5", "mean_class"}
    # the test list's confusion matrix (row = true class): its rows count the list's labels, its diagonal is top-1
    conf = torch.tensor(test["confusion"])
    k = results["num_classes"]
    labels = torch.tensor([int(line.split()[-1]) for line in (mp4_lists / "test.txt").read_text().split("\n") if line])
    assert conf.shape == (k, k) and torch.equal(conf.sum(1), torch.bincount(labels, minlength=k))
    assert conf.diag().sum().item() == pytest.approx(test["top1"] / 100 * test["num_videos"])
    assert [e["epoch"] for e in results["evaluations"]] == [2] and results["final"]["num_videos"] == 4
    records = list(read_metrics(ref / "metrics.jsonl"))
    (logged,) = [r for r in records if r["kind"] == "test"]
    assert {k: logged[k] for k in test} == test
    assert len([r for r in records if r["kind"] == "eval"]) == 1

    out = tmp_path / "crashed"
    crash_on_call(monkeypatch, ft, "evaluate_views", 2)  # call 1: val after epoch 2; call 2: the test list
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(finetune_args(mp4_lists, out, *common))
    monkeypatch.undo()
    assert not (out / "results.json").exists()
    assert main(finetune_args(mp4_lists, out, *common, "--resume", "auto")) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["test"] == test and again["evaluations"] == results["evaluations"]


def test_a_missing_or_reused_test_list_is_refused_before_any_work(mp4_lists, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(finetune_args(mp4_lists, out, "finetune.epochs=1", "finetune.test_list=no_such_test.txt")) == 1
    err = capsys.readouterr().err
    assert "finetune.test_list" in err and "no_such_test.txt" in err
    assert not (out / "checkpoints").exists()
    with pytest.raises(ConfigError, match="finetune.test_list"):
        load_config(FinetuneJob, overrides=["finetune.val_list=v.txt", "finetune.test_list=v.txt"])
    assert load_config(FinetuneJob).finetune.test_list == ""


@pytest.mark.parametrize("override,key", [("finetune.reprob=1.5", "finetune.reprob"),
                                          ("finetune.reprob=-0.1", "finetune.reprob"),
                                          ("finetune.keep_checkpoints=0", "finetune.keep_checkpoints"),
                                          ("finetune.head_epochs=-1", "finetune.head_epochs")])
def test_new_finetune_keys_are_validated(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(FinetuneJob, overrides=[override])
    assert load_config(FinetuneJob).finetune.reprob == 0.25  # VideoMAE's default
