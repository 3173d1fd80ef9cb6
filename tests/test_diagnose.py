"""`smile diagnose` end to end on a tiny generated list, and `eval.features.encoder_tokens` behind it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import write_two_class_videos

from smile_video.checkpoint import save_model
from smile_video.cli import main
from smile_video.config import ModelConfig
from smile_video.eval.diagnostics import STAT_KEYS, feature_stats
from smile_video.eval.features import encoder_tokens
from smile_video.models import PretrainModel

CFG = ModelConfig(img_size=32, num_frames=4, patch_size=8, embed_dim=64, depth=2, num_heads=4, decoder_dim=32,
                  decoder_depth=1, decoder_num_heads=2)
MODEL = ["model.img_size=32", "model.num_frames=4", "model.patch_size=8", "model.embed_dim=64", "model.depth=2",
         "model.num_heads=4", "model.decoder_dim=32", "model.decoder_depth=1", "model.decoder_num_heads=2"]


@pytest.fixture(scope="module")
def video_list(tmp_path_factory):
    """Six 12-frame 40 px videos of two classes, as a VideoMAE list."""
    root = tmp_path_factory.mktemp("videos")
    lines = write_two_class_videos(root, 6, base=20, step=15, top=8, still_x=14, still_value=40)
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root / "list.txt"


@pytest.fixture(scope="module")
def collapsed_checkpoint(tmp_path_factory):
    """A pretraining checkpoint whose encoder outputs one constant vector: its final norm has zero weight."""
    torch.manual_seed(0)
    model = PretrainModel(CFG, target_dim=16).eval()
    with torch.no_grad():
        model.encoder.norm.weight.zero_()
        model.encoder.norm.bias.copy_(torch.linspace(-1, 1, CFG.embed_dim))
    path = tmp_path_factory.mktemp("ckpt") / "collapsed"
    save_model(model, CFG, path)
    return path


def test_encoder_tokens_draws_a_seeded_subset_of_the_list(video_list):
    tokens, labels = encoder_tokens(None, CFG, str(video_list), sampling_rate=2, max_clips=4, batch_size=3, seed=0)
    assert tokens.shape == (4, CFG.num_tokens, CFG.embed_dim) and tokens.dtype == torch.float32
    assert labels.dtype == torch.long and set(labels.tolist()) <= {0, 1}
    again, _ = encoder_tokens(None, CFG, str(video_list), sampling_rate=2, max_clips=4, batch_size=2, seed=0)
    assert torch.allclose(tokens, again, atol=1e-5)  # same clips, same random init, any batch size
    everything, all_labels = encoder_tokens(None, CFG, str(video_list), sampling_rate=2, max_clips=64, seed=0)
    assert everything.shape[0] == 6 and all_labels.tolist() == [0, 1, 0, 1, 0, 1]  # the whole list, in order


def test_random_init_end_to_end_prints_the_table_and_writes_what_the_library_computes(video_list, tmp_path, capsys):
    argv = ["diagnose", "--random-init", "--list", str(video_list), "--max-clips", "4", "--sampling-rate", "2",
            "--out", str(tmp_path / "out"), *MODEL]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "4 clips" in out and "random init" in out
    for key in STAT_KEYS:
        assert key in out
    record = json.loads((tmp_path / "out" / "diagnose.json").read_text())
    assert record["clips"] == 4 and record["grid"] == list(CFG.grid) and record["model"]["embed_dim"] == 64
    stats = record["encoders"]["random init"]["stats"]
    tokens, _ = encoder_tokens(None, CFG, str(video_list), sampling_rate=2, max_clips=4, seed=0)
    expected = feature_stats(tokens, CFG.grid)
    assert list(stats) == list(STAT_KEYS)
    for key in STAT_KEYS:
        assert stats[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key
    ent = record["encoders"]["random init"]["attention_entropy"]
    assert "attention entropy per block" in out and len(ent) == CFG.depth
    assert all(0.5 * math.log(CFG.num_tokens) < e <= math.log(CFG.num_tokens) + 1e-6 for e in ent)
    stream = record["encoders"]["random init"]["residual_stream"]
    assert "residual stream after the embedding" in out and len(stream) == CFG.depth + 1
    assert all(s["constant_share"] + s["clip_share"] + s["token_share"] == pytest.approx(1.0) for s in stream)
    filters = record["encoders"]["random init"]["patch_filters"]
    assert "tubelet embedding filters" in out and filters["flat_share"] < 0.05 < filters["change_share"]


def test_compare_random_finds_the_collapsed_checkpoint(video_list, collapsed_checkpoint, tmp_path, capsys):
    argv = ["diagnose", str(collapsed_checkpoint), "--compare-random", "--list", str(video_list), "--max-clips",
            "6", "--out", str(tmp_path)]
    assert main(argv) == 0  # the checkpoint's own config.json describes the model: no model.* needed
    out = capsys.readouterr().out
    assert "checkpoint" in out and "random init" in out
    enc = json.loads((tmp_path / "diagnose.json").read_text())["encoders"]
    collapsed, random = enc["checkpoint"]["stats"], enc["random init"]["stats"]
    assert collapsed["constant_share"] == pytest.approx(1.0, abs=1e-6)
    assert collapsed["similarity_raw"] == pytest.approx(1.0, abs=1e-6)
    assert collapsed["effective_rank"] == 0.0 and collapsed["similarity_centred"] is None  # undefined: no variation
    # a random init is far from constant (measured: constant share 0.73, effective rank 27.5 of 64)
    assert random["constant_share"] < 0.9 and random["effective_rank"] > 10 and random["var_total"] > 0.01
    assert math.isfinite(random["similarity_centred"]) and random["similarity_centred"] < random["similarity_raw"]
    assert enc["checkpoint"]["identity"].startswith("checkpoint:") and enc["random init"]["identity"] == "random-init:0"


@pytest.mark.parametrize("argv, message", [
    (["--random-init", "--list", "nowhere.txt"], "list 'nowhere.txt' does not exist"),
    (["missing_ckpt", "--list", "LIST"], "checkpoint 'missing_ckpt' does not exist"),
    (["--list", "LIST"], "exactly one of an encoder checkpoint"),
    (["--random-init", "--compare-random", "--list", "LIST"], "--compare-random"),
    (["--random-init", "--list", "LIST", "--max-clips", "0"], "--max-clips"),
    (["--random-init", "--list", "LIST", "model.depht=3"], "model.depht"),
])
def test_bad_inputs_fail_before_any_work_with_a_clear_message(argv, message, video_list, capsys):
    argv = [str(video_list) if a == "LIST" else a for a in argv]
    assert main(["diagnose", *argv]) != 0
    assert message in capsys.readouterr().err
