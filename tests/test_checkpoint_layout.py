"""The run layout's step directories: one definition for the writer, the loader and `smile verify`."""

from __future__ import annotations

import pytest
import torch

from smile_video.checkpoint import load_model, save_model
from smile_video.checkpoint_layout import step_dir_name, step_dirs
from smile_video.config import ModelConfig
from smile_video.manifest import verify_tree
from smile_video.models.vit import VideoViTEncoder

CFG = ModelConfig(preset="tiny", img_size=32, num_frames=4, depth=1)


def test_step_dirs_orders_by_step_past_eight_digits_and_skips_other_names(tmp_path):
    root = tmp_path / "checkpoints"
    assert step_dirs(root) == []  # no folder yet
    for step in (100_000_000, 7, 99_999_999):
        (root / step_dir_name(step)).mkdir(parents=True)
    (root / ".tmp-abc").mkdir()  # a save in progress
    (root / "step_12").mkdir()  # not a name the writer makes
    (root / "step_00000009").write_text("a file, not a checkpoint")
    assert [s for s, _ in step_dirs(root)] == [7, 99_999_999, 100_000_000]  # by step, not by name
    assert step_dir_name(7) == "step_00000007"
    with pytest.raises(ValueError, match="step"):
        step_dir_name(-1)


def test_loader_and_verify_see_the_same_checkpoints_beyond_eight_digits(tmp_path):
    run = tmp_path / "run"
    for seed, step in enumerate((99_999_999, 100_000_000)):
        torch.manual_seed(seed)
        save_model(VideoViTEncoder(CFG), CFG, run / "checkpoints" / step_dir_name(step))
    (run / "checkpoints" / "step_zzz").mkdir()  # a stray folder: neither loaded nor reported
    loaded, _, _ = load_model(run)
    newest, _, _ = load_model(run / "checkpoints" / "step_100000000")
    oldest, _, _ = load_model(run / "checkpoints" / "step_99999999")
    w = loaded.blocks[0].attn.qkv.weight
    assert torch.equal(w, newest.blocks[0].attn.qkv.weight)  # the newest by step ("step_99999999" sorts last by name)
    assert not torch.equal(w, oldest.blocks[0].attn.qkv.weight)
    assert [d.name for d, _ in verify_tree(run)] == ["step_99999999", "step_100000000"]
