"""The student ViT: layout, positions, attention biases, masking contract, presets, activation checkpointing."""

from __future__ import annotations

import math

import pytest
import torch

from smile_video.config import MODEL_PRESETS, ModelConfig
from smile_video.models import PretrainModel, VideoClassifier, VideoViTEncoder, encode, sinusoid_table
from smile_video.models.vit import Attention, gather_tokens, mask_indices


def small_cfg(**kw) -> ModelConfig:
    base = dict(img_size=32, num_frames=4, patch_size=8, embed_dim=64, depth=2, num_heads=4, decoder_dim=32,
                decoder_depth=1, decoder_num_heads=2)
    return ModelConfig(**{**base, **kw})  # grid (2, 4, 4): 32 tokens


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial values everywhere (biases and LayerNorms included), so that layout bugs cannot hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm_scale = "norm" in name and name.endswith("weight")
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if is_norm_scale else 0.0))
    return model


def test_sinusoid_table_matches_the_videomae_formula():
    n, d = 7, 10
    table = sinusoid_table(n, d)
    for pos in range(n):
        for j in range(d):
            angle = pos / math.pow(10000, 2 * (j // 2) / d)
            ref = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert table[pos, j].item() == pytest.approx(ref, abs=1e-6)


def test_encoder_layout_and_fixed_positions():
    cfg = small_cfg()
    enc = VideoViTEncoder(cfg)
    keys = set(enc.state_dict())
    block = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.q_bias", "attn.v_bias", "attn.proj.weight",
             "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
             "mlp.fc2.bias"]
    expected = {"patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"}
    expected |= {f"blocks.{i}.{k}" for i in range(cfg.depth) for k in block}
    assert keys == expected
    assert enc.blocks[0].attn.qkv.bias is None
    assert enc.blocks[0].norm1.eps == 1e-6 and enc.norm.eps == 1e-6
    assert not any("pos_embed" in n for n, _ in enc.named_parameters())
    assert torch.equal(enc.pos_embed[0], sinusoid_table(cfg.num_tokens, cfg.embed_dim))
    assert "norm.weight" not in VideoViTEncoder(cfg, use_mean_pooling=True).state_dict()


def test_patch_embedding_is_the_conv3d_and_masked_embeds_only_visible_tubelets():
    cfg = small_cfg(tubelet_size=2)
    enc = randomize_(VideoViTEncoder(cfg))
    x = torch.randn(3, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    ref = torch.nn.functional.conv3d(x, enc.patch_embed.proj.weight, enc.patch_embed.proj.bias, stride=(2, 8, 8))
    ref = ref.flatten(2).transpose(1, 2)  # (B, N, C) in (t', h', w') order
    torch.testing.assert_close(enc.patch_embed(x), ref, atol=1e-5, rtol=1e-5)
    mask = torch.rand(3, cfg.num_tokens, generator=torch.Generator().manual_seed(2)).argsort(1) < 24
    visible, _ = mask_indices(mask, 24)
    torch.testing.assert_close(enc.patch_embed(x, visible), ref[~mask].view(3, -1, cfg.embed_dim), atol=1e-5,
                               rtol=1e-5)
    cl = x.contiguous(memory_format=torch.channels_last_3d)  # a strided clip works too
    torch.testing.assert_close(enc.patch_embed(cl, visible), ref[~mask].view(3, -1, cfg.embed_dim), atol=1e-5,
                               rtol=1e-5)


def test_attention_uses_q_and_v_bias_and_no_k_bias():
    torch.manual_seed(0)
    attn = randomize_(Attention(16, 2))
    x = torch.randn(2, 5, 16)
    Wq, Wk, Wv = attn.qkv.weight.chunk(3)
    q = (x @ Wq.T + attn.q_bias).view(2, 5, 2, 8).transpose(1, 2)
    k = (x @ Wk.T).view(2, 5, 2, 8).transpose(1, 2)
    v = (x @ Wv.T + attn.v_bias).view(2, 5, 2, 8).transpose(1, 2)
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1)  # (B, nh, N, N)
    ref = attn.proj((w @ v).transpose(1, 2).reshape(2, 5, 16))
    assert torch.allclose(attn(x), ref, atol=1e-5)


def test_masked_tokens_do_not_influence_the_visible_ones():
    cfg = small_cfg()
    enc = randomize_(VideoViTEncoder(cfg)).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    mask = torch.zeros(2, cfg.num_tokens, dtype=torch.bool)
    mask[:, :16] = True  # the whole first tubelet (t' = 0) is masked
    out = enc(x, mask)
    assert out.shape == (2, 16, cfg.embed_dim)
    y = x.clone()
    y[:, :, :2] = torch.randn(2, 3, 2, 32, 32)  # change only the masked frames
    assert torch.allclose(enc(y, mask), out, atol=1e-6)
    assert not torch.allclose(enc.forward_tokens(y), enc.forward_tokens(x))


def test_unequal_mask_counts_and_bad_shapes_are_named():
    cfg = small_cfg()
    enc = VideoViTEncoder(cfg)
    x = torch.randn(2, 3, 4, 32, 32)
    mask = torch.zeros(2, cfg.num_tokens, dtype=torch.bool)
    mask[0, :3] = True
    with pytest.raises(ValueError, match=r"same number of tokens.*\[3, 0\]"):
        enc(x, mask)
    with pytest.raises(ValueError, match="bool"):
        enc(x, mask.long())
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        enc(torch.randn(2, 3, 6, 32, 32))


def test_pretrain_predictions_are_in_ascending_masked_order():
    cfg = small_cfg()
    model = randomize_(PretrainModel(cfg, target_dim=24)).eval()
    with torch.no_grad():  # make the decoder blocks identities: each prediction is head(norm(mask_token + pos))
        for blk in model.decoder.blocks:
            for lin in (blk.attn.proj, blk.mlp.fc2):
                lin.weight.zero_()
                lin.bias.zero_()
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(3, cfg.num_tokens, generator=g).argsort(1).argsort(1) < 20  # (B, N), 20 masked each
    x = torch.randn(3, 3, 4, 32, 32)
    pred = model(x, mask)
    assert pred.shape == (3, 20, 24)
    pos = sinusoid_table(cfg.num_tokens, cfg.decoder_dim)
    for b in range(3):
        idx = torch.nonzero(mask[b]).flatten()  # ascending
        ref = model.decoder.head(model.decoder.norm(model.mask_token[0] + pos[idx]))
        assert torch.allclose(pred[b], ref, atol=1e-5)
    empty = torch.zeros(3, cfg.num_tokens, dtype=torch.bool)
    assert model(x, empty).shape == (3, 0, 24)


@pytest.mark.parametrize("count", [0, 5, 20, 32])
def test_mask_indices_are_the_boolean_selection_in_ascending_order(count):
    g = torch.Generator().manual_seed(count)
    mask = torch.rand(4, 32, generator=g).argsort(1).argsort(1) < count  # (B, N), `count` masked a row
    visible, masked = mask_indices(mask, count)
    assert visible.shape == (4, 32 - count) and masked.shape == (4, count)
    x = torch.randn(4, 32, 3, generator=g)
    assert torch.equal(gather_tokens(x, masked), x[mask].view(4, count, 3))
    assert torch.equal(gather_tokens(x, visible), x[~mask].view(4, 32 - count, 3))


def test_a_given_mask_count_skips_the_content_check_and_gives_the_same_predictions():
    cfg = small_cfg()
    model = randomize_(PretrainModel(cfg, target_dim=24)).eval()
    mask = torch.rand(3, cfg.num_tokens, generator=torch.Generator().manual_seed(0)).argsort(1) < 20
    x = torch.randn(3, 3, 4, 32, 32)
    assert torch.equal(model(x, mask, num_masked=20), model(x, mask))
    visible, _ = mask_indices(mask, 20)  # indices the caller already has are used as they are
    assert torch.equal(model.encoder(x, mask, 20, visible=visible), model.encoder(x, mask))
    with pytest.raises(ValueError, match=r"num_masked must be in \[0, 32\]"):
        model(x, mask, num_masked=33)
    with pytest.raises(ValueError, match="bool"):  # the static checks stay
        model(x, mask.long(), num_masked=20)


@pytest.mark.parametrize("decoder_attention", ["joint", "frame"])
def test_the_counted_forward_compiles_as_one_graph(decoder_attention):
    """torch.compile traces the training forward (mask count given) with no graph break: static shapes, no host
    sync; without the count, the mask check's host read breaks the graph (which is what this test would catch)."""
    torch._dynamo.reset()
    cfg = small_cfg(decoder_attention=decoder_attention)
    model = randomize_(PretrainModel(cfg, target_dim=24))
    mask = torch.rand(2, cfg.num_tokens, generator=torch.Generator().manual_seed(0)).argsort(1) < 20
    x = torch.randn(2, 3, 4, 32, 32)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    out = compiled(x, mask, num_masked=20)
    out.square().mean().backward()
    assert torch.equal(out, model(x, mask, num_masked=20))
    torch._dynamo.reset()
    with pytest.raises(Exception, match="(?i)graph break|data-dependent|Unsupported"):
        torch.compile(model, fullgraph=True, backend="eager")(x, mask)
    torch._dynamo.reset()


def test_classifier_pools_then_fc_norm():
    cfg = small_cfg()
    clf = randomize_(VideoClassifier(cfg, num_classes=5)).eval()
    assert {k.split(".")[0] for k in clf.state_dict()} == {"patch_embed", "blocks", "fc_norm", "head"}
    x = torch.randn(2, 3, 4, 32, 32)
    feats = clf.forward_features(x)
    assert torch.allclose(feats, clf.fc_norm(clf.forward_tokens(x).mean(1)))
    assert torch.allclose(clf(x), clf.head(feats))
    pooled, tokens = encode(clf, x, per_token=True)
    assert torch.equal(pooled, feats) and tokens.shape == (2, cfg.num_tokens, cfg.embed_dim)


@pytest.mark.parametrize("preset", sorted(MODEL_PRESETS))
def test_every_preset_forward_backward(preset):
    # each preset's widths and depths at a tiny input: 2 frames at 32 px (4 tokens)
    cfg = ModelConfig(**{**MODEL_PRESETS[preset], "preset": preset, "img_size": 32, "num_frames": 2})
    torch.manual_seed(0)
    model = PretrainModel(cfg, target_dim=8)
    x = torch.randn(1, 3, 2, 32, 32)
    mask = torch.tensor([[True, False, True, False]])
    pred = model(x, mask)
    assert pred.shape == (1, 2, 8)
    pred.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_activation_checkpointing_gives_the_same_gradients():
    cfg = small_cfg(drop_path=0.3)
    x = torch.randn(2, 3, 4, 32, 32)
    mask = torch.zeros(2, cfg.num_tokens, dtype=torch.bool)
    mask[:, 1::2] = True
    grads, calls = [], []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = PretrainModel(cfg, target_dim=8).train()
        model.set_grad_checkpointing(ckpt)
        counter: list[int] = []
        model.encoder.blocks[0].register_forward_pre_hook(lambda *_, c=counter: c.append(1))
        torch.manual_seed(1)  # drop path draws from the global generator
        model(x, mask).square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        calls.append(len(counter))
    assert calls == [1, 2]  # the checkpointed block really was recomputed in backward
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-6)


def test_drop_path_is_active_in_training_only():
    cfg = small_cfg(drop_path=0.5)
    enc = randomize_(VideoViTEncoder(cfg))
    x = torch.randn(4, 3, 4, 32, 32)
    enc.eval()
    assert torch.equal(enc.forward_tokens(x), enc.forward_tokens(x))
    enc.train()
    torch.manual_seed(0)
    a = enc.forward_tokens(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, enc.forward_tokens(x))


def test_standardize_tokens_is_batchnorm_over_every_token():
    from smile_video.models.pretrain import standardize_tokens

    x = torch.randn(3, 7, 16) * torch.linspace(0.1, 5.0, 16) + torch.randn(16) * 10  # per-channel scale and offset
    ref = torch.nn.BatchNorm1d(16, affine=False, track_running_stats=False)(x.reshape(21, 16)).view(3, 7, 16)
    out = standardize_tokens(x)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(out.mean(dim=(0, 1)), torch.zeros(16), atol=1e-5)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_batch_standardised_decoder_input_hides_a_shared_vector(norm):
    # The encoder's final LayerNorm bias adds one vector to every output token. With decoder_input_norm=batch the
    # predictions do not see it (nor a per-channel rescaling through the LayerNorm weight); without it they do.
    cfg = small_cfg(decoder_input_norm=norm)
    model = randomize_(PretrainModel(cfg, target_dim=12)).eval()
    mask = torch.rand(4, cfg.num_tokens, generator=torch.Generator().manual_seed(1)).argsort(1).argsort(1) < 24
    x = torch.randn(4, 3, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model(x, mask)
        model.encoder.norm.bias.add_(torch.randn(cfg.embed_dim) * 3)
        model.encoder.norm.weight.mul_(torch.rand(cfg.embed_dim) + 0.5)
        after = model(x, mask)
    same = torch.allclose(before, after, atol=1e-4)
    assert same == (norm == "batch")


def test_decoder_input_norm_must_be_known():
    from smile_video.config import ConfigError

    with pytest.raises(ConfigError, match="model.decoder_input_norm"):
        small_cfg(decoder_input_norm="layer").validate()


def test_flat_positions_are_videomae_and_separable_ones_give_each_axis_its_channels():
    from smile_video.models.vit import position_table

    grid, d = (2, 3, 4), 64
    assert torch.equal(position_table(grid, d, "flat"), sinusoid_table(24, d))
    table = position_table(grid, d, "separable").view(*grid, d)  # token order: t, then row, then column
    ct, cs = 16, 24  # time: a quarter (even); rows and columns: half of the rest each
    time_, rows, cols = table[..., :ct], table[..., ct:ct + cs], table[..., ct + cs:]
    # each block depends on its own axis only, and is the 1-D sinusoid of that axis' index
    for t in range(2):
        assert torch.equal(time_[t], sinusoid_table(2, ct)[t].expand(3, 4, ct))
    for y in range(3):
        assert torch.equal(rows[:, y], sinusoid_table(3, cs)[y].expand(2, 4, cs))
    for x in range(4):
        assert torch.equal(cols[:, :, x], sinusoid_table(4, cs)[x].expand(2, 3, cs))
    assert len(torch.unique(table.view(24, d), dim=0)) == 24  # every position its own code
    with pytest.raises(ValueError, match="position kind"):
        position_table(grid, d, "learned")


def test_separable_positions_reach_encoder_and_decoder_and_bad_settings_are_named():
    from smile_video.config import ConfigError
    from smile_video.models.vit import position_table

    cfg = small_cfg(pos_embed="separable")
    model = PretrainModel(cfg, target_dim=12)
    assert torch.equal(model.encoder.pos_embed[0], position_table(cfg.grid, cfg.embed_dim, "separable"))
    assert torch.equal(model.decoder_pos_embed[0], position_table(cfg.grid, cfg.decoder_dim, "separable"))
    assert not torch.equal(PretrainModel(small_cfg(), 12).encoder.pos_embed, model.encoder.pos_embed)
    with pytest.raises(ConfigError, match="model.pos_embed"):
        small_cfg(pos_embed="learned").validate()
    with pytest.raises(ConfigError, match="model.decoder_dim"):
        small_cfg(pos_embed="separable", decoder_dim=4, decoder_num_heads=1).validate()


@pytest.mark.parametrize("ckpt", [False, True])
def test_frame_decoder_attention_predicts_a_time_step_from_its_own_visible_tokens_only(ckpt):
    from smile_video.config import ConfigError

    x = torch.randn(2, 3, 4, 32, 32)  # grid (2, 4, 4): time step 0 = tokens 0-15, step 1 = tokens 16-31
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(2, 32, generator=g).argsort(1).argsort(1) < 20  # 20 masked each, both steps mixed
    step = torch.arange(32) // 16
    y = x.clone()
    y[:, :, 2:] += torch.randn_like(y[:, :, 2:])  # other pixels in time step 1 (its tubelet's frames 2-3) only
    moved = {}
    for attention in ("joint", "frame"):
        model = randomize_(PretrainModel(small_cfg(depth=1, decoder_attention=attention), target_dim=8)).train()
        model.set_grad_checkpointing(ckpt)
        model.encoder.blocks = torch.nn.ModuleList()  # an encoder of patch embedding + norm: token by token
        with torch.no_grad():
            a, b = model(x, mask), model(y, mask)
        moved[attention] = torch.stack([(a - b)[i].abs().amax(dim=-1) for i in range(2)])  # (2, 20)
        if attention == "frame":  # gradients flow through the masked attention, checkpointed or not
            model(x, mask).square().mean().backward()
            assert all(p.grad is not None for p in model.decoder.parameters())
    masked_step = torch.stack([step[mask[i]] for i in range(2)])  # (2, 20)
    assert (moved["joint"][masked_step == 0] > 1e-4).all()  # joint: step 0's predictions see step 1's change
    assert (moved["frame"][masked_step == 0] == 0).all()  # frame: they do not
    assert (moved["frame"][masked_step == 1] > 1e-4).all()
    with pytest.raises(ConfigError, match="model.decoder_attention"):
        small_cfg(decoder_attention="causal").validate()
