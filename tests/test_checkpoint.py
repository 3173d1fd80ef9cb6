"""Checkpoints: our format round-trips exactly; official layouts load with exact key reports; no code runs on load."""

from __future__ import annotations

import argparse
import json
import os

import pytest
import torch

from smile_video.checkpoint import init_classifier, load_encoder, load_model, safe_torch_load, save_model
from smile_video.config import ModelConfig
from smile_video.models import PretrainModel, VideoClassifier, VideoViTEncoder, encode

CFG = ModelConfig(img_size=32, num_frames=4, patch_size=8, embed_dim=64, depth=2, num_heads=4, decoder_dim=32,
                  decoder_depth=1, decoder_num_heads=2)
C, CD, D, BLOCK = 64, 32, 16, 8 * 8 * 2  # widths, target dim, tubelet volume


def official_block_shapes(prefix: str, dim: int) -> dict[str, tuple[int, ...]]:
    """The official VideoMAE / SMILE block keys and shapes (issue 4's key list)."""
    return {
        f"{prefix}norm1.weight": (dim,), f"{prefix}norm1.bias": (dim,),
        f"{prefix}attn.qkv.weight": (3 * dim, dim), f"{prefix}attn.q_bias": (dim,), f"{prefix}attn.v_bias": (dim,),
        f"{prefix}attn.proj.weight": (dim, dim), f"{prefix}attn.proj.bias": (dim,),
        f"{prefix}norm2.weight": (dim,), f"{prefix}norm2.bias": (dim,),
        f"{prefix}mlp.fc1.weight": (4 * dim, dim), f"{prefix}mlp.fc1.bias": (4 * dim,),
        f"{prefix}mlp.fc2.weight": (dim, 4 * dim), f"{prefix}mlp.fc2.bias": (dim,),
    }


def official_pretrain_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {"encoder.patch_embed.proj.weight": (C, 3, 2, 8, 8), "encoder.patch_embed.proj.bias": (C,)}
    for i in range(2):
        shapes |= official_block_shapes(f"encoder.blocks.{i}.", C)
    shapes |= {"encoder.norm.weight": (C,), "encoder.norm.bias": (C,), "encoder_to_decoder.weight": (CD, C),
               "mask_token": (1, 1, CD)}
    shapes |= official_block_shapes("decoder.blocks.0.", CD)
    shapes |= {"decoder.norm.weight": (CD,), "decoder.norm.bias": (CD,), "decoder.head.weight": (D, CD),
               "decoder.head.bias": (D,)}
    return shapes


def official_finetune_shapes(num_classes: int) -> dict[str, tuple[int, ...]]:
    shapes = {"patch_embed.proj.weight": (C, 3, 2, 8, 8), "patch_embed.proj.bias": (C,)}
    for i in range(2):
        shapes |= official_block_shapes(f"blocks.{i}.", C)
    return shapes | {"fc_norm.weight": (C,), "fc_norm.bias": (C,), "head.weight": (num_classes, C),
                     "head.bias": (num_classes,)}


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: 0.2 * torch.randn(s, generator=g) + (1.0 if "norm" in k and k.endswith("weight") else 0.0)
            for k, s in shapes.items()}


def clip() -> torch.Tensor:
    return torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))


MASK = torch.arange(CFG.num_tokens).repeat(2, 1) % 4 != 0  # 24 of 32 tokens masked in each sample


def test_model_keys_equal_the_official_layouts():
    assert set(PretrainModel(CFG, D).state_dict()) == set(official_pretrain_shapes())
    assert set(VideoClassifier(CFG, 7).state_dict()) == set(official_finetune_shapes(7))


@pytest.mark.parametrize("wrapper", ["model", "module"])
def test_official_pretraining_checkpoint_loads_and_matches(tmp_path, wrapper):
    sd = random_state(official_pretrain_shapes())
    path = tmp_path / "checkpoint-799.pth"
    torch.save({wrapper: sd, "args": argparse.Namespace(model="pretrain_videomae_small", mask_ratio=0.8),
                "epoch": 799}, path)
    model, cfg, report = load_model(path, cfg=CFG)
    assert report.ok and report.missing == [] and report.layout == "pretrain"
    assert isinstance(model, PretrainModel) and model.target_dim == D
    reference = PretrainModel(CFG, D)
    reference.load_state_dict(sd, strict=True)
    x = clip()
    with torch.no_grad():
        assert torch.equal(model.eval()(x, MASK), reference.eval()(x, MASK))
    encoder, _ = load_encoder(path, cfg=CFG)
    with torch.no_grad():
        assert torch.equal(encoder.eval().forward_tokens(x), reference.encoder.forward_tokens(x))


def test_official_finetuned_checkpoint_loads_and_matches(tmp_path):
    sd = random_state(official_finetune_shapes(7))
    path = tmp_path / "checkpoint-best.pth"
    torch.save({"module": sd, "args": argparse.Namespace(nb_classes=7)}, path)
    model, cfg, report = load_model(path, cfg=CFG)
    assert report.ok and isinstance(model, VideoClassifier) and model.num_classes == 7
    reference = VideoClassifier(CFG, 7)
    reference.load_state_dict(sd, strict=True)
    x = clip()
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference.eval()(x))


def test_config_inferred_from_shapes_without_a_config(tmp_path):
    torch.save({"model": random_state(official_pretrain_shapes())}, tmp_path / "c.pth")
    _, cfg, _ = load_model(tmp_path / "c.pth")
    assert (cfg.embed_dim, cfg.depth, cfg.decoder_dim, cfg.decoder_depth, cfg.patch_size, cfg.tubelet_size) == \
        (C, 2, CD, 1, 8, 2)


def test_key_problems_are_reported_exactly(tmp_path):
    sd = random_state(official_pretrain_shapes())
    del sd["encoder.blocks.1.attn.v_bias"]
    sd["encoder.blocks.0.gamma_1"] = torch.ones(C)  # layer scale: not part of the architecture
    sd["decoder.head.bias"] = torch.zeros(D + 1)
    torch.save({"model": sd}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="missing keys") as err:
        load_model(tmp_path / "bad.pth", cfg=CFG)
    assert "encoder.blocks.1.attn.v_bias" in str(err.value) and "gamma_1" in str(err.value)
    _, _, report = load_model(tmp_path / "bad.pth", cfg=CFG, strict=False)
    assert report.missing == ["encoder.blocks.1.attn.v_bias"]
    assert report.unexpected == ["encoder.blocks.0.gamma_1"]
    assert report.mismatched == [("decoder.head.bias", (D + 1,), (D,))]


@pytest.mark.parametrize("kind", ["pretrain", "classifier", "encoder"])
def test_our_format_round_trips_exactly(tmp_path, kind):
    torch.manual_seed(0)
    model = {"pretrain": lambda: PretrainModel(CFG, D), "classifier": lambda: VideoClassifier(CFG, 5),
             "encoder": lambda: VideoViTEncoder(CFG, use_mean_pooling=True)}[kind]()
    save_model(model, CFG, tmp_path / "ckpt", meta={"epoch": 3, "teacher": "clip"})
    doc = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert doc["kind"] == kind and doc["meta"]["epoch"] == 3
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["config.json", "manifest.json", "model.safetensors"]  # no temp
    loaded, cfg, report = load_model(tmp_path / "ckpt")
    assert report.ok and cfg == CFG and type(loaded) is type(model)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_load_encoder_from_every_format_gives_the_same_features(tmp_path):
    torch.manual_seed(0)
    model = PretrainModel(CFG, D).eval()
    save_model(model, CFG, tmp_path / "ours")
    torch.save({"model": model.state_dict()}, tmp_path / "official.pth")
    from smile_video.checkpoint import save_hf

    save_hf(model, CFG, tmp_path / "hf")
    x = clip()
    with torch.no_grad():
        ref, _ = encode(model.encoder, x)
        for src in ("ours", "official.pth", "hf"):
            encoder, _ = load_encoder(tmp_path / src, cfg=CFG)
            pooled, _ = encode(encoder.eval(), x)
            assert torch.allclose(pooled, ref, atol=1e-6), src


def test_run_directory_resolves_to_the_newest_checkpoint(tmp_path):
    for step, seed in ((10, 0), (200, 1)):
        torch.manual_seed(seed)
        save_model(VideoViTEncoder(CFG), CFG, tmp_path / "run" / "checkpoints" / f"step_{step:08d}")
    loaded, _, _ = load_model(tmp_path / "run")
    newest, _, _ = load_model(tmp_path / "run" / "checkpoints" / "step_00000200")
    assert torch.equal(loaded.blocks[0].attn.qkv.weight, newest.blocks[0].attn.qkv.weight)


def test_init_classifier_misses_exactly_the_new_head(tmp_path):
    torch.save({"model": random_state(official_pretrain_shapes())}, tmp_path / "pre.pth")
    clf, _, report = init_classifier(tmp_path / "pre.pth", num_classes=3, cfg=CFG)
    assert report.missing == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    assert report.unexpected == [] and clf.num_classes == 3
    with pytest.raises(ValueError, match="init_classifier"):
        load_model(tmp_path / "pre.pth", kind="classifier", cfg=CFG)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_pickle",))


def test_safe_torch_load_refuses_code_and_allows_namespace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"model": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=1e-3)}, tmp_path / "ok.pth")
    assert safe_torch_load(tmp_path / "ok.pth")["args"].lr == 1e-3
    torch.save({"model": {"w": torch.zeros(1)}, "evil": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="evil.pth"):
        safe_torch_load(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned_by_pickle").exists()


def test_separable_positions_survive_a_round_trip_and_refuse_the_hugging_face_export(tmp_path):
    import dataclasses

    from smile_video.checkpoint import save_hf

    cfg = dataclasses.replace(CFG, pos_embed="separable")
    torch.manual_seed(0)
    model = PretrainModel(cfg, D).eval()
    save_model(model, cfg, tmp_path / "ours")
    loaded, loaded_cfg, _ = load_model(tmp_path / "ours")
    encoder, _ = load_encoder(tmp_path / "ours")
    assert loaded_cfg.pos_embed == "separable"
    assert torch.equal(loaded.decoder_pos_embed, model.decoder_pos_embed)
    x = clip()
    with torch.no_grad():
        assert torch.equal(encode(encoder, x)[0], encode(model.encoder, x)[0])
        flat = PretrainModel(CFG, D).eval()
        flat.load_state_dict(model.state_dict())  # the same weights: only the positions differ
        assert not torch.allclose(encode(flat.encoder, x)[0], encode(model.encoder, x)[0])
    with pytest.raises(ValueError, match="pos_embed"):
        save_hf(model, cfg, tmp_path / "hf")
