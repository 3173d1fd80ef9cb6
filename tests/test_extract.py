"""`smile extract`: pooled (and per-token) features of a video list from any checkpoint format; `smile export`."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from smile_video.checkpoint import load_model, save_model
from smile_video.cli import main
from smile_video.config import ModelConfig
from smile_video.data.dataset import VideoClipDataset
from smile_video.data.lists import read_video_list
from smile_video.data.normalize import normalize
from smile_video.data.video_io import write_video
from smile_video.models import PretrainModel, VideoClassifier, encode

CFG = ModelConfig(img_size=32, num_frames=4, patch_size=8, embed_dim=64, depth=2, num_heads=4, decoder_dim=32,
                  decoder_depth=1, decoder_num_heads=2)


@pytest.fixture(scope="module")
def video_list(tmp_path_factory):
    """Three 12-frame 48 px clips of different content, one undecodable file between them."""
    root = tmp_path_factory.mktemp("videos")
    g = torch.Generator().manual_seed(0)
    lines = []
    for i in range(3):
        frames = (torch.rand(12, 48, 48, 3, generator=g) * 255).to(torch.uint8)
        write_video(root / f"v{i}.mp4", frames, quality=10)
        lines.append(f"v{i}.mp4 {i}")
        if i == 0:
            (root / "broken.mp4").write_bytes(b"not a video")
            lines.append("broken.mp4 7")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = PretrainModel(CFG, target_dim=16).eval()
    path = tmp_path_factory.mktemp("ckpt") / "model"
    save_model(model, CFG, path)
    return path, model


def run_extract(ckpt, root, out, *extra) -> dict[str, torch.Tensor]:
    argv = ["extract", str(ckpt), "--data", str(root / "list.txt"), "--data-root", str(root), "--out", str(out),
            "--sampling-rate", "2", "--batch-size", "2", "--quiet", *extra]
    assert main(argv) == 0
    return load_file(str(out))


def test_extract_pooled_and_per_token_features(video_list, checkpoint, tmp_path):
    ckpt, model = checkpoint
    out = run_extract(ckpt, video_list, tmp_path / "f.safetensors", "--per-token")
    assert out["features"].shape == (3, CFG.embed_dim)
    assert out["tokens"].shape == (3, CFG.num_tokens, CFG.embed_dim)
    assert out["indices"].tolist() == [0, 2, 3] and out["labels"].tolist() == [0, 1, 2]
    with safe_open(str(tmp_path / "f.safetensors"), framework="pt") as f:
        meta = f.metadata()
    assert [p.rsplit("/", 1)[-1] for p in json.loads(meta["paths"])] == ["v0.mp4", "v1.mp4", "v2.mp4"]
    assert any("broken.mp4" in s for s in json.loads(meta["skipped"]))
    assert json.loads(meta["grid"]) == list(CFG.grid)
    # the same numbers as encoding the dataset's clip directly
    entries = read_video_list(video_list / "list.txt", data_root=str(video_list))
    ds = VideoClipDataset(entries, num_frames=4, sampling_rate=2, size=32, train=False)
    with torch.no_grad():
        ref, tokens = encode(model.encoder, normalize(ds[2]["video"][None]), per_token=True)
    assert torch.allclose(out["features"][1], ref[0], atol=1e-5)
    assert torch.allclose(out["tokens"][1], tokens[0], atol=1e-5)
    assert torch.allclose(out["tokens"].mean(1), out["features"], atol=1e-5)  # pretraining encoder: plain mean
    assert not torch.allclose(out["features"][0], out["features"][1])


def test_extract_from_an_official_pth_matches_our_format(video_list, checkpoint, tmp_path):
    ckpt, model = checkpoint
    ours = run_extract(ckpt, video_list, tmp_path / "a.safetensors")
    torch.save({"model": model.state_dict()}, tmp_path / "official.pth")
    official = run_extract(tmp_path / "official.pth", video_list, tmp_path / "b.safetensors",
                           "--num-frames", "4", "--img-size", "32", "--num-heads", "4")
    assert torch.allclose(ours["features"], official["features"], atol=1e-6)


def test_extract_from_a_classifier_uses_fc_norm(video_list, tmp_path):
    torch.manual_seed(1)
    clf = VideoClassifier(CFG, num_classes=3).eval()
    save_model(clf, CFG, tmp_path / "clf")
    out = run_extract(tmp_path / "clf", video_list, tmp_path / "c.safetensors", "--per-token")
    with torch.no_grad():
        expected = clf.fc_norm(out["tokens"].mean(1))
    assert torch.allclose(out["features"], expected, atol=1e-5)


def test_export_hf_and_smile_commands(checkpoint, tmp_path):
    ckpt, model = checkpoint
    assert main(["export", "hf", str(ckpt), str(tmp_path / "hf")]) == 0
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == ["VideoMAEModel"]
    torch.save({"model": model.state_dict()}, tmp_path / "official.pth")
    assert main(["export", "smile", str(tmp_path / "official.pth"), str(tmp_path / "ours"), "--num-frames", "4",
                 "--img-size", "32", "--num-heads", "4"]) == 0
    loaded, cfg, _ = load_model(tmp_path / "ours")
    assert (cfg.num_frames, cfg.img_size, cfg.num_heads, cfg.embed_dim, cfg.depth) == (4, 32, 4, 64, 2)
    assert torch.equal(loaded.mask_token, model.mask_token)
    assert main(["export", "hf", str(tmp_path / "missing.pth"), str(tmp_path / "x")]) == 1
