"""Converters and Hugging Face transformers parity (same weights, same input: max |diff| <= 1e-4 in float32)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from smile_video.checkpoint import hf_bias_style, load_model, save_hf
from smile_video.config import ModelConfig
from smile_video.models import PretrainModel, VideoClassifier, VideoViTEncoder, sinusoid_table
from smile_video.models.convert import (
    conventional_heads,
    detect_layout,
    hf_to_ours,
    infer_config,
    ours_to_hf,
    pretrain_to_encoder,
    unwrap_checkpoint,
)

transformers = pytest.importorskip("transformers")
from transformers.models.videomae import modeling_videomae  # noqa: E402

CFG = ModelConfig(img_size=32, num_frames=4, patch_size=8, embed_dim=64, depth=2, num_heads=4, decoder_dim=32,
                  decoder_depth=1, decoder_num_heads=2)


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-zero biases (q_bias and v_bias included) and non-unit LayerNorms, so no mapping error can hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 1.0 if "norm" in name and name.endswith("weight") else 0.0
            p.copy_(scale + 0.2 * torch.randn(p.shape, generator=g))
    return model


def clip(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, CFG.num_frames, CFG.img_size, CFG.img_size, generator=torch.Generator().manual_seed(1))


def to_hf_input(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 1, 3, 4)  # ours (B, C, T, H, W) -> transformers (B, T, C, H, W)


def from_pretrained(cls, path):
    model, info = cls.from_pretrained(str(path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def test_sinusoid_table_equals_transformers():
    ref = modeling_videomae.get_sinusoid_encoding_table(CFG.num_tokens, CFG.embed_dim)[0]
    assert torch.equal(sinusoid_table(CFG.num_tokens, CFG.embed_dim), ref)


def test_encoder_parity_with_videomae_model(tmp_path):
    enc = randomize_(VideoViTEncoder(CFG)).eval()
    assert save_hf(enc, CFG, tmp_path) == "VideoMAEModel"
    hf = from_pretrained(transformers.VideoMAEModel, tmp_path)
    layer = hf.encoder.layer[1].attention.attention
    assert torch.equal(layer.query.bias, enc.blocks[1].attn.q_bias)  # q and v biases survive the trip
    assert torch.equal(layer.value.bias, enc.blocks[1].attn.v_bias)
    assert layer.key.bias is None or not layer.key.bias.any()  # transformers 5.17 has a (zero) key bias
    on_disk = load_file(str(tmp_path / "model.safetensors"))
    name = {"hub": "attention.attention.q_bias", "linear": "attention.attention.query.bias"}[hf_bias_style()]
    assert f"encoder.layer.1.{name}" in on_disk  # the spelling the installed transformers reads
    x = clip()
    with torch.no_grad():
        ours = enc.forward_tokens(x)
        theirs = hf(pixel_values=to_hf_input(x)).last_hidden_state
        assert (ours - theirs).abs().max() <= 1e-4
        mask = torch.zeros(2, CFG.num_tokens, dtype=torch.bool)
        mask[:, ::3] = True
        theirs_masked = hf(pixel_values=to_hf_input(x), bool_masked_pos=mask).last_hidden_state
        assert (enc(x, mask) - theirs_masked).abs().max() <= 1e-4


def test_classifier_parity_with_videomae_for_video_classification(tmp_path):
    clf = randomize_(VideoClassifier(CFG, num_classes=5)).eval()
    assert save_hf(clf, CFG, tmp_path, labels=list("abcde")) == "VideoMAEForVideoClassification"
    hf = from_pretrained(transformers.VideoMAEForVideoClassification, tmp_path)
    assert hf.config.id2label[2] == "c"
    x = clip()
    with torch.no_grad():
        diff = (clf(x) - hf(pixel_values=to_hf_input(x)).logits).abs().max()
    # transformers' fc_norm has eps 1e-5 where VideoMAE's has 1e-6: within the tolerance, see docs/models.md
    assert diff <= 1e-4


def test_pretraining_model_exports_its_encoder(tmp_path):
    model = randomize_(PretrainModel(CFG, target_dim=16)).eval()
    save_hf(model, CFG, tmp_path)
    hf = from_pretrained(transformers.VideoMAEModel, tmp_path)
    x = clip()
    with torch.no_grad():
        assert (model.encoder.forward_tokens(x) - hf(pixel_values=to_hf_input(x)).last_hidden_state).abs().max() <= 1e-4


def hf_config(**kw):
    base = dict(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=64, num_hidden_layers=2,
                num_attention_heads=4, intermediate_size=256, layer_norm_eps=1e-6, decoder_hidden_size=32,
                decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=128)
    return transformers.VideoMAEConfig(**{**base, **kw})


def test_import_a_directory_written_by_transformers(tmp_path):
    torch.manual_seed(0)
    hf = randomize_(transformers.VideoMAEForVideoClassification(hf_config(num_labels=3))).eval()
    hf.save_pretrained(str(tmp_path))
    model, cfg, report = load_model(tmp_path)
    assert report.ok and report.layout == "hf"
    assert isinstance(model, VideoClassifier) and model.num_classes == 3
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.patch_size, cfg.img_size) == (64, 2, 4, 8, 32)
    x = clip()
    with torch.no_grad():
        assert (model.eval()(x) - hf(pixel_values=to_hf_input(x)).logits).abs().max() <= 1e-4
    in_memory = hf_to_ours(hf.state_dict())  # transformers 5's in-memory names (query.bias, value.bias)
    assert in_memory.keys() == model.state_dict().keys()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in in_memory.items())


def test_import_videomae_for_pretraining(tmp_path):
    """transformers' pretraining checkpoints (e.g. VideoMAE's released ones) become a PretrainModel."""
    torch.manual_seed(0)
    hf = randomize_(transformers.VideoMAEForPreTraining(hf_config(use_mean_pooling=False))).eval()
    hf.save_pretrained(str(tmp_path))
    model, cfg, report = load_model(tmp_path)
    assert report.ok and isinstance(model, PretrainModel)
    assert model.target_dim == 3 * 2 * 8 * 8 and (cfg.decoder_dim, cfg.decoder_depth) == (32, 1)
    x = clip()
    mask = torch.zeros(2, CFG.num_tokens, dtype=torch.bool)
    mask[:, 5:25] = True
    with torch.no_grad():
        theirs = hf(pixel_values=to_hf_input(x), bool_masked_pos=mask).logits
        # transformers' decoder norm has eps 1e-5 (VideoMAE: 1e-6)
        assert (model.eval()(x, mask) - theirs).abs().max() <= 1e-4


@pytest.mark.parametrize("style", ["hub", "linear"])
def test_hf_key_mapping_round_trips_exactly(style):
    clf = randomize_(VideoClassifier(CFG, num_classes=4))
    sd = clf.state_dict()
    for prefix in ("", "videomae."):
        hf = ours_to_hf(sd, prefix=prefix, bias_style=style)
        assert detect_layout(hf) == "hf"
        key_bias = f"{prefix}encoder.layer.0.attention.attention.key.bias"
        assert (key_bias in hf) == (style == "linear") and (style == "hub" or not hf[key_bias].any())
        back = hf_to_ours(hf)
        assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)


def test_a_key_bias_does_not_change_attention():
    """Why hf_to_ours may drop transformers' key.bias: q . (k + b) shifts a query's scores by a constant."""
    attn = randomize_(VideoViTEncoder(CFG)).blocks[0].attn
    x = torch.randn(2, 6, CFG.embed_dim)
    with torch.no_grad():
        ref = attn(x)
        bias = torch.cat([attn.q_bias, torch.randn(64), attn.v_bias])  # a random key bias
        q, k, v = torch.nn.functional.linear(x, attn.qkv.weight, bias).view(2, 6, 3, 4, 16).permute(2, 0, 3, 1, 4)
        out = attn.proj(torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 6, 64))
    assert torch.allclose(out, ref, atol=1e-5)


def test_unwrap_prefixes_and_layouts():
    model = PretrainModel(CFG, target_dim=16)
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    out = unwrap_checkpoint({"module": sd, "epoch": 3})
    assert out.keys() == model.state_dict().keys() and detect_layout(out) == "pretrain"
    enc = pretrain_to_encoder(out)
    assert enc.keys() == VideoViTEncoder(CFG).state_dict().keys() and detect_layout(enc) == "finetune"
    with pytest.raises(ValueError, match="not tensors"):
        unwrap_checkpoint({"model": {"a": torch.zeros(1), "b": 3}})
    with pytest.raises(ValueError, match="unrecognised checkpoint layout"):
        detect_layout({"foo.weight": torch.zeros(1)})


def test_infer_config_from_shapes():
    model = PretrainModel(CFG, target_dim=16)
    cfg = infer_config(model.state_dict(), num_heads=4, decoder_num_heads=2)
    for name in ("embed_dim", "depth", "patch_size", "tubelet_size", "mlp_ratio", "decoder_dim", "decoder_depth",
                 "num_heads", "decoder_num_heads"):
        assert getattr(cfg, name) == getattr(CFG, name), name
    with_base = infer_config(model.state_dict(), base=CFG)
    assert with_base.img_size == 32 and with_base.num_heads == 4
    # a ViT-S-wide encoder (one block is enough): heads, input size and frames from the ViT-S convention
    vit_s = VideoViTEncoder(ModelConfig(img_size=32, num_frames=2, embed_dim=384, depth=1, num_heads=1,
                                        decoder_dim=32, decoder_num_heads=1)).state_dict()
    guessed = infer_config(vit_s)
    assert (guessed.embed_dim, guessed.depth, guessed.num_heads) == (384, 1, 6)
    assert (guessed.img_size, guessed.num_frames) == (224, 16)
    assert [conventional_heads(d) for d in (192, 384, 768, 1024, 1280, 512)] == [3, 6, 12, 16, 16, 8]
    assert conventional_heads(1024 + 64) == 17 and conventional_heads(48) == 3 and conventional_heads(7) == 1
