"""Checkpoint manifests (sizes and sha256 written last): a damaged model is refused naming the file, `--resume auto`
and a run directory given as a checkpoint take the newest intact checkpoint, a directory without one still loads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from smile_video.checkpoint import load_model, save_model
from smile_video.cli import main
from smile_video.config import ModelConfig
from smile_video.engine.checkpoints import checkpoint_dirs, find_resume, save_checkpoint
from smile_video.manifest import MANIFEST, CorruptCheckpoint, manifest_problems
from smile_video.models import VideoViTEncoder

CFG = ModelConfig(img_size=32, num_frames=4, patch_size=16, embed_dim=32, depth=1, num_heads=2)


def flip_byte(path, offset: int = -100) -> None:
    """Change one byte of `path` in place (its size stays): what a disk or copy error does."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def encoder(seed: int) -> VideoViTEncoder:
    torch.manual_seed(seed)
    return VideoViTEncoder(CFG)


def test_a_saved_model_lists_its_files_and_a_damaged_one_is_refused_naming_the_file(tmp_path):
    d = tmp_path / "model"
    save_model(encoder(0), CFG, d)
    doc = json.loads((d / MANIFEST).read_text())
    assert sorted(doc["files"]) == ["config.json", "model.safetensors"]
    assert doc["files"]["model.safetensors"]["bytes"] == (d / "model.safetensors").stat().st_size
    assert manifest_problems(d) == []
    load_model(d)

    flip_byte(d / "model.safetensors")  # a weight's bytes: safetensors itself would load it silently
    load_file(str(d / "model.safetensors"))
    with pytest.raises(CorruptCheckpoint, match=r"model.safetensors: sha256 differs"):
        load_model(d)
    (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-10])  # truncated
    with pytest.raises(CorruptCheckpoint, match=r"model.safetensors has \d+ bytes"):
        load_model(d)


def test_a_directory_without_a_manifest_loads_as_before(tmp_path):
    d = tmp_path / "model"
    save_model(encoder(0), CFG, d)
    os.remove(d / MANIFEST)  # written before manifests existed, or by another tool
    assert manifest_problems(d) is None
    load_model(d)
    (d / MANIFEST).write_text("{not json")
    assert manifest_problems(d)[0].startswith("manifest.json is unreadable")


def test_resume_auto_and_a_run_directory_take_the_newest_intact_checkpoint(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2):
        save_checkpoint(run, step, encoder(step), CFG, {"step": step}, {"step": step}, keep_last=0)
    newest = run / "checkpoints" / "step_00000002"
    assert sorted(json.loads((newest / MANIFEST).read_text())["files"]) == [
        "config.json", "model.safetensors", "training_state.pt"]
    assert find_resume(run, "auto") == newest

    flip_byte(newest / "training_state.pt")
    with pytest.warns(UserWarning, match=r"passing over .*step_00000002.*training_state.pt: sha256 differs"):
        assert find_resume(run, "auto") == run / "checkpoints" / "step_00000001"
    with pytest.raises(CorruptCheckpoint, match="training_state.pt"):  # named explicitly: refused, not replaced
        find_resume(run, str(newest))
    flip_byte(newest / "model.safetensors")
    with pytest.warns(UserWarning, match="step_00000002"):
        loaded, _, _ = load_model(run)  # a run directory as a checkpoint: its newest intact one
    assert torch.equal(loaded.blocks[0].attn.qkv.weight, encoder(1).blocks[0].attn.qkv.weight)

    flip_byte(run / "checkpoints" / "step_00000001" / "config.json", offset=5)
    with pytest.warns(UserWarning), pytest.raises(CorruptCheckpoint, match="every checkpoint"):
        find_resume(run, "auto")


TINY = ["model.preset=tiny", "model.img_size=32", "model.num_frames=4", "model.depth=1", "mask.ratio=0.75",
        "teacher.kind=pixel", "motion.enabled=false", "data.epoch_size=8", "train.batch_size=4", "train.lr=1e-3",
        "train.log_every=1", "--quiet"]


def test_pretrain_resumes_past_a_damaged_checkpoint_and_ends_where_an_undamaged_run_ends(tmp_path):
    out = tmp_path / "pt"
    assert main(["pretrain", *TINY, "--out", str(out)]) == 0  # checkpoints at steps 2 and 4 (two stages)
    final = load_file(str(out / "model" / "model.safetensors"))
    flip_byte(out / "checkpoints" / "step_00000004" / "model.safetensors")
    with pytest.warns(UserWarning, match="step_00000004"):
        assert main(["pretrain", *TINY, "--out", str(out), "--resume", "auto"]) == 0  # from step 2: steps 3, 4 again
    resumed = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed if r.get("event") == "resume"] == [2]
    again = load_file(str(out / "model" / "model.safetensors"))
    assert final.keys() == again.keys() and all(torch.equal(final[k], again[k]) for k in final)  # bitwise (CPU)
    assert manifest_problems(out / "checkpoints" / "step_00000004") == []  # written again, whole


def test_smile_verify_lists_each_checkpoint_and_fails_on_a_damaged_one(tmp_path, capsys):
    run = tmp_path / "run"
    for step in (1, 2):
        save_checkpoint(run, step, encoder(step), CFG, {"step": step}, {"step": step}, keep_last=0)
    save_model(encoder(3), CFG, run / "model")
    assert main(["verify", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.count(": intact") == 3 and "3 checkpoint directories: 0 damaged" in out
    flip_byte(run / "checkpoints" / "step_00000001" / "model.safetensors")
    os.remove(run / "model" / MANIFEST)
    assert main(["verify", str(run), str(run / "checkpoints" / "step_00000002")]) == 1
    out = capsys.readouterr().out
    assert "step_00000001: DAMAGED: model.safetensors: sha256 differs" in out
    assert "model: no manifest.json (not checked)" in out and "4 checkpoint directories: 1 damaged, 1 without" in out
    assert main(["verify", str(tmp_path / "missing")]) == 1
    assert "is not a directory" in capsys.readouterr().err


def test_a_save_after_resuming_past_a_damaged_checkpoint_keeps_itself_and_discards_the_abandoned_future(tmp_path):
    run = tmp_path / "run"
    for step in (2, 4):
        save_checkpoint(run, step, encoder(step), CFG, {"step": step}, {"step": step}, keep_last=2)
    flip_byte(run / "checkpoints" / "step_00000004" / "model.safetensors")
    with pytest.warns(UserWarning, match="step_00000004"):
        assert find_resume(run, "auto") == run / "checkpoints" / "step_00000002"
    # resumed past the damaged step 4 from step 2: step 3's save must keep step 3 (pruning by step number kept the
    # damaged step 4 alone before), and step 4, of the abandoned run, must not be what a later --resume auto takes
    save_checkpoint(run, 3, encoder(3), CFG, {"step": 3}, {"step": 3}, keep_last=1)
    assert [p.name for p in checkpoint_dirs(run)] == ["step_00000003"]
    assert find_resume(run, "auto") == run / "checkpoints" / "step_00000003"
    assert not list((run / "checkpoints").glob(".tmp-*"))  # nothing left aside


def test_a_half_deleted_checkpoint_is_never_listed_and_leftovers_are_cleared(tmp_path, monkeypatch):
    run = tmp_path / "run"
    save_checkpoint(run, 1, encoder(1), CFG, {"step": 1}, {"step": 1}, keep_last=0)
    save_checkpoint(run, 2, encoder(2), CFG, {"step": 2}, {"step": 2}, keep_last=0)
    import shutil

    real_rmtree = shutil.rmtree

    def dies_after_the_manifest(path, *args, **kwargs):  # a kill while the run's old step 2 is removed
        if run not in Path(path).parents:
            return real_rmtree(path, *args, **kwargs)
        for name in ("manifest.json", "model.safetensors", "config.json"):  # the order rmtree happened to take
            (Path(path) / name).unlink(missing_ok=True)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(shutil, "rmtree", dies_after_the_manifest)
        with pytest.raises(KeyboardInterrupt):  # step 2 written again (a resume), killed while the old one goes
            save_checkpoint(run, 2, encoder(3), CFG, {"step": 2}, {"step": 2}, keep_last=0)
    # the old step 2 kept training_state.pt without a manifest: were it still named step_*, --resume auto would take
    # it as an unchecked checkpoint without weights
    assert find_resume(run, "auto") == run / "checkpoints" / "step_00000001"
    save_checkpoint(run, 2, encoder(2), CFG, {"step": 2}, {"step": 2}, keep_last=0)
    assert not list((run / "checkpoints").glob(".tmp-*"))
    assert find_resume(run, "auto") == run / "checkpoints" / "step_00000002"


def test_a_training_state_path_is_checked_against_its_checkpoint_manifest(tmp_path):
    run = tmp_path / "run"
    save_checkpoint(run, 1, encoder(1), CFG, {"step": 1}, {"step": 1}, keep_last=0)
    state = run / "checkpoints" / "step_00000001" / "training_state.pt"
    assert find_resume(run, str(state)) == state
    flip_byte(state.parent / "model.safetensors")
    with pytest.raises(CorruptCheckpoint, match="model.safetensors"):
        find_resume(run, str(state))


def test_saving_a_model_again_drops_the_old_manifest_first(tmp_path, monkeypatch):
    d = tmp_path / "model"
    save_model(encoder(0), CFG, d)

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("smile_video.checkpoint.write_manifest", killed)  # stopped after the files, before it
    with pytest.raises(KeyboardInterrupt):
        save_model(encoder(1), CFG, d)
    assert manifest_problems(d) is None  # not a stale manifest refusing the new, whole files
    loaded, _, _ = load_model(d)
    assert torch.equal(loaded.blocks[0].attn.qkv.weight, encoder(1).blocks[0].attn.qkv.weight)


def test_an_unreadable_file_or_a_malformed_entry_is_a_problem_line_not_a_traceback(tmp_path, monkeypatch):
    d = tmp_path / "model"
    save_model(encoder(0), CFG, d)
    doc = json.loads((d / MANIFEST).read_text())
    doc["files"]["config.json"] = "abc"
    (d / MANIFEST).write_text(json.dumps(doc))
    assert manifest_problems(d) == [f"{MANIFEST} lists config.json without its size and sha256"]
    save_model(encoder(0), CFG, d)
    (d / "model.safetensors").unlink()
    (d / "model.safetensors").mkdir()  # is_file() False: missing
    assert manifest_problems(d) == ["model.safetensors is missing"]
    (d / "model.safetensors").rmdir()
    save_model(encoder(0), CFG, d)

    def denied(path, *args):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("smile_video.manifest._sha256", denied)  # root reads any file: the OS error is simulated
    assert manifest_problems(d) == ["config.json is unreadable (Permission denied)",
                                    "model.safetensors is unreadable (Permission denied)"]
