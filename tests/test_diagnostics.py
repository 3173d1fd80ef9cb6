"""eval/diagnostics.py: constant share, effective rank, variance decomposition and (centred) frame similarity,
checked against cases computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from smile_video.eval.diagnostics import (
    STAT_KEYS,
    centred_frame_similarity,
    effective_rank,
    feature_stats,
    object_contrast,
    target_r2,
)
from smile_video.eval.similarity import frame_similarity, off_diagonal_mean

GRID = (4, 2, 2)  # T' = 4 time steps of 2 x 2 tokens
N = 16


def per_step(values: torch.Tensor) -> torch.Tensor:
    """(B, T', C) time-step values -> tokens (B, N, C): every spatial token of a step equals the step's value."""
    b, t, c = values.shape
    return values[:, :, None, :].expand(b, t, 4, c).reshape(b, t * 4, c)


def test_constant_output_is_all_constant_share_rank_zero_and_raw_similarity_one():
    tokens = torch.full((3, N, 8), 0.1).add(torch.arange(8.0))  # every token the same vector
    s = feature_stats(tokens, GRID)
    assert list(s) == list(STAT_KEYS)
    assert s["constant_share"] == pytest.approx(1.0, abs=1e-12)
    assert s["similarity_raw"] == pytest.approx(1.0, abs=1e-12)
    assert s["effective_rank"] == 0.0 and s["effective_rank_clips"] == 0.0
    assert s["var_total"] < 1e-28
    # nothing varies: shares and the centred cosine are undefined, not "perfectly temporal"
    for key in ("clip_share", "time_share", "space_share", "similarity_centred"):
        assert math.isnan(s[key]), key


def test_constant_share_by_hand():
    # half the tokens (1, 0), half (0, 1): mu = (0.5, 0.5), ||mu||^2 = 0.5, mean ||x||^2 = 1
    tokens = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(2, 8, 1)  # (2, 16, 2)
    assert feature_stats(tokens, GRID)["constant_share"] == pytest.approx(0.5)
    # offset m plus zero-mean +-z: ||m||^2 / (||m||^2 + ||z||^2) = 9 / (9 + 1)
    z = torch.tensor([[0.0, 1.0], [0.0, -1.0]]).repeat(2, 8, 1)
    assert feature_stats(z + torch.tensor([3.0, 0.0]), GRID)["constant_share"] == pytest.approx(0.9)


def test_effective_rank_by_hand():
    # singular values (3, 1): p = (3/4, 1/4), exp(H) = exp(-(0.75 ln 0.75 + 0.25 ln 0.25))
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(torch.tensor([[3.0, 0.0], [0.0, 1.0]]), centre=False) == pytest.approx(expected)
    assert effective_rank(torch.eye(5), centre=False) == pytest.approx(5.0)
    # centred: rows +-e_j have zero mean and k equal singular values
    k = 6
    assert effective_rank(torch.cat([torch.eye(k), -torch.eye(k)]) + 7.0) == pytest.approx(k)


def test_rank_one_centred_data_has_effective_rank_one():
    g = torch.Generator().manual_seed(0)
    offset, direction = torch.randn(32, generator=g) * 10, torch.randn(32, generator=g)
    a = torch.randn(5, N, 1, generator=g, dtype=torch.float64)
    tokens = offset + a * direction  # (5, 16, 32): the variation spans one direction
    s = feature_stats(tokens, GRID)
    assert s["effective_rank"] == pytest.approx(1.0, abs=1e-9)
    assert s["effective_rank_clips"] == pytest.approx(1.0, abs=1e-9)
    full = feature_stats(torch.randn(5, N, 32, generator=g), GRID)["effective_rank"]
    assert 20 < full <= 32  # isotropic noise uses most of the 32 directions


def test_orthogonal_time_steps_have_zero_raw_similarity_and_minus_one_over_t_minus_one_centred():
    # step t's feature is e_t: raw cosines 0; after removing the mean (1/4) sum e_t, cos(e_i - m, e_j - m) =
    # (-2/4 + 1/4) / (1 - 1/4) = -1/3
    values = torch.eye(4)[None].repeat(2, 1, 1)  # (B=2, T'=4, C=4)
    tokens = per_step(values)
    s = feature_stats(tokens, GRID)
    assert s["similarity_raw"] == pytest.approx(0.0, abs=1e-12)
    assert s["similarity_centred"] == pytest.approx(-1 / 3)
    sim = centred_frame_similarity(tokens, GRID)  # (B, T', T')
    assert sim.shape == (2, 4, 4) and sim.dtype == torch.float64
    assert torch.allclose(sim.diagonal(dim1=1, dim2=2), torch.ones(2, 4, dtype=torch.float64))


def test_centring_removes_a_large_shared_offset():
    g = torch.Generator().manual_seed(1)
    c = 64
    offset = torch.randn(c, generator=g) * 100  # the same vector in every token of every clip
    tokens = offset + torch.randn(32, N, c, generator=g)  # independent noise per token
    s = feature_stats(tokens, GRID)
    assert s["similarity_raw"] > 0.99  # the offset dominates every raw cosine
    assert abs(s["similarity_centred"]) < 0.05  # the time steps themselves are unrelated
    assert s["constant_share"] > 0.99


def test_raw_similarity_matches_frame_similarity_and_centring_defaults_to_the_dataset_mean():
    g = torch.Generator().manual_seed(2)
    tokens = torch.randn(3, N, 8, generator=g) + torch.linspace(0, 1, N)[None, :, None]  # (3, 16, 8)
    s = feature_stats(tokens, GRID)
    assert s["similarity_raw"] == pytest.approx(off_diagonal_mean(frame_similarity(tokens, GRID).mean(0)), abs=1e-6)
    raw = centred_frame_similarity(tokens, GRID, mean=torch.zeros(8))
    assert torch.allclose(raw.float(), frame_similarity(tokens, GRID), atol=1e-6)
    mean = tokens.double().mean(dim=(0, 1))  # the mean token = mean over clips and time steps of the step features
    assert torch.allclose(centred_frame_similarity(tokens, GRID), centred_frame_similarity(tokens, GRID, mean))


def test_variances_by_hand_and_they_add_up_to_the_per_token_variance():
    # clip b: every token b * e_0 (B=2): variance of {0, 1} = 1/4 in dim 0, 0 in dim 1 -> mean over dims 1/8
    clips = per_step(torch.tensor([0.0, 1.0])[:, None, None] * torch.tensor([1.0, 0.0]).expand(2, 4, 2))
    s = feature_stats(clips, GRID)
    assert (s["var_across_clips"], s["var_over_time"], s["var_space"]) == pytest.approx((0.125, 0.0, 0.0))
    assert s["var_total"] == pytest.approx(0.125) and s["clip_share"] == pytest.approx(1.0)
    # step t of every clip: (t mod 2) * e_0 -> variance over time 1/4 in dim 0
    steps = per_step((torch.arange(4.0) % 2)[None, :, None] * torch.tensor([1.0, 0.0]).expand(2, 4, 2))
    s = feature_stats(steps, GRID)
    assert (s["var_across_clips"], s["var_over_time"], s["var_space"]) == pytest.approx((0.0, 0.125, 0.0))
    assert s["time_share"] == pytest.approx(1.0)
    g = torch.Generator().manual_seed(3)
    s = feature_stats(torch.randn(4, N, 8, generator=g) * torch.rand(4, N, 1, generator=g), GRID)
    assert s["var_across_clips"] + s["var_over_time"] + s["var_space"] == pytest.approx(s["var_total"])
    assert s["clip_share"] + s["time_share"] + s["space_share"] == pytest.approx(1.0)


def test_bad_shapes_are_refused_with_a_clear_message():
    tokens = torch.randn(2, N, 8)
    with pytest.raises(ValueError, match="N=15"):
        feature_stats(tokens[:, :15], GRID)
    with pytest.raises(ValueError, match=r"\(B, N, C\)"):
        feature_stats(tokens[0], GRID)
    with pytest.raises(ValueError, match="grid"):
        feature_stats(tokens, (4, 4))
    with pytest.raises(ValueError, match="floating"):
        feature_stats(tokens.long(), GRID)
    with pytest.raises(ValueError, match="NaN or inf"):
        feature_stats(tokens.index_fill(1, torch.tensor([3]), float("nan")), GRID)
    with pytest.raises(ValueError, match=r"mean must be \(C,\)"):
        centred_frame_similarity(tokens, GRID, mean=torch.zeros(7))
    with pytest.raises(ValueError, match=r"\(M, C\)"):
        effective_rank(torch.zeros(5))


def test_attention_entropy_is_the_blocks_own_attention_and_reads_collapse():
    from smile_video.config import ModelConfig
    from smile_video.eval.diagnostics import _attention_probs, attention_entropy
    from smile_video.models import VideoViTEncoder

    torch.manual_seed(0)
    cfg = ModelConfig(img_size=32, num_frames=4, patch_size=16, embed_dim=32, depth=2, num_heads=2)
    enc = VideoViTEncoder(cfg).eval()
    x = torch.randn(3, 3, 4, 32, 32)
    n = cfg.num_tokens
    # the probabilities applied to the block's values give the block's own attention output
    h = enc.blocks[0].norm1(enc.patch_embed(x) + enc.pos_embed)
    attn = enc.blocks[0].attn
    p = _attention_probs(attn, h)  # (B, heads, N, N)
    B, N, C = h.shape
    bias = torch.cat([attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias])
    v = torch.nn.functional.linear(h, attn.qkv.weight, bias).view(B, N, 3, 2, C // 2)[:, :, 2].transpose(1, 2)
    torch.testing.assert_close(attn.proj((p @ v).transpose(1, 2).reshape(B, N, C)), attn(h), rtol=1e-4, atol=1e-5)
    ent = attention_entropy(enc, x)
    assert len(ent) == 2 and all(0 < e <= math.log(n) + 1e-9 for e in ent)
    assert min(ent) > 0.8 * math.log(n)  # a random init attends almost uniformly
    with torch.no_grad():  # huge query / key weights: each query attends to ~one key
        for blk in enc.blocks:
            blk.attn.qkv.weight[: 2 * C].mul_(200.0)
    assert max(attention_entropy(enc, x)) < 0.3 * math.log(n)


def test_patch_filter_stats_reads_flat_grey_and_change_filters():
    from smile_video.config import ModelConfig
    from smile_video.eval.diagnostics import patch_filter_stats
    from smile_video.models.vit import PatchEmbed

    g = torch.Generator().manual_seed(0)
    shape = (16, 3, 2, 8, 8)
    flat = torch.randn(16, 3, 1, 1, 1, generator=g).expand(shape)  # per-channel constant: a colour detector
    s = patch_filter_stats(flat)
    assert s["flat_share"] == pytest.approx(1.0) and s["change_share"] == pytest.approx(0.0, abs=1e-12)
    grey = torch.randn(16, 1, 1, 1, 1, generator=g).expand(shape)
    assert patch_filter_stats(grey)["grey_share"] == pytest.approx(1.0)
    assert patch_filter_stats(flat)["grey_share"] < 0.9
    half = torch.randn(16, 3, 1, 8, 8, generator=g)
    change = torch.cat([half, -half], dim=2)  # frame 1 = -frame 0: responds only to a change inside the tubelet
    s = patch_filter_stats(change)
    assert s["change_share"] == pytest.approx(1.0) and s["flat_share"] == pytest.approx(0.0, abs=1e-12)
    # a random init: ~1 / (t p p) flat, ~(t - 1) / t change
    w = torch.randn(shape, generator=g)
    s = patch_filter_stats(w)
    assert 0.3 / 128 < s["flat_share"] < 3 / 128 and 0.4 < s["change_share"] < 0.6
    # against an independent reference: the embedding's own response to flat unit images, one channel at a time
    cfg = ModelConfig(img_size=16, num_frames=2, patch_size=8, embed_dim=16, depth=1, num_heads=1)
    pe = PatchEmbed(cfg)
    with torch.no_grad():
        pe.proj.weight.copy_(w)
        pe.proj.bias.zero_()
        x = torch.eye(3)[:, :, None, None, None].expand(3, 3, 2, 16, 16)  # clip c: channel c = 1 everywhere
        r = pe(x)[:, 0]  # (3 channels, 16 filters): each filter's summed weight on that channel
    reference = float(r.double().pow(2).sum()) / (2 * 8 * 8) / float(w.double().pow(2).sum())
    assert s["flat_share"] == pytest.approx(reference)
    with pytest.raises(ValueError, match="tubelet embedding kernel"):
        patch_filter_stats(torch.zeros(4, 3, 8, 8))
    with pytest.raises(ValueError, match="all zero"):
        patch_filter_stats(torch.zeros(shape))


def test_residual_stream_shares_add_up_and_end_at_the_encoders_stream():
    from smile_video.config import ModelConfig
    from smile_video.eval.diagnostics import STREAM_KEYS, residual_stream
    from smile_video.models import VideoViTEncoder

    torch.manual_seed(0)
    cfg = ModelConfig(img_size=32, num_frames=4, patch_size=16, embed_dim=32, depth=2, num_heads=2)
    enc = VideoViTEncoder(cfg, use_mean_pooling=True).eval()  # no final norm: forward_tokens is the stream itself
    x = torch.randn(3, 3, 4, 32, 32)
    stages = residual_stream(enc, x)
    assert len(stages) == cfg.depth + 1 and all(tuple(s) == STREAM_KEYS for s in stages)
    for s in stages:
        assert s["constant_share"] + s["clip_share"] + s["token_share"] == pytest.approx(1.0)
    with torch.no_grad():
        out = enc.forward_tokens(x).double()
    assert stages[-1]["rms"] == pytest.approx(float(out.pow(2).mean().sqrt()), rel=1e-5)
    same = residual_stream(enc, x[:1].expand(3, -1, -1, -1, -1))  # three copies of one clip: no per-clip part
    assert all(s["clip_share"] < 1e-9 for s in same)
    with torch.no_grad():  # a large bias on the embedding: the stream becomes one constant vector
        enc.patch_embed.proj.bias.fill_(100.0)
    assert residual_stream(enc, x)[0]["constant_share"] > 0.99


def test_encoder_inside_is_both_diagnostics_from_one_pass():
    from smile_video.config import ModelConfig
    from smile_video.eval.diagnostics import attention_entropy, encoder_inside, residual_stream
    from smile_video.models import VideoViTEncoder

    torch.manual_seed(0)
    cfg = ModelConfig(img_size=32, num_frames=4, patch_size=8, embed_dim=32, depth=3, num_heads=2)
    enc = VideoViTEncoder(cfg).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    calls = []
    hook = enc.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    inside = encoder_inside(enc, x)
    assert len(calls) == 1  # one pass
    hook.remove()
    assert inside["attention_entropy"] == pytest.approx(attention_entropy(enc, x), rel=1e-9)
    assert inside["residual_stream"] == residual_stream(enc, x)
    assert len(inside["attention_entropy"]) == cfg.depth and len(inside["residual_stream"]) == cfg.depth + 1


def _object_contrast_by_loops(tokens, objects):
    """An independent reference for object_contrast: plain Python loops over clips and positions."""
    B, N, C = tokens.shape
    x = tokens.double().tolist()
    o = objects.tolist()

    def sq(a, b):
        return sum((ai - bi) ** 2 for ai, bi in zip(a, b))

    means = {}
    for n in range(N):
        rows = [x[b][n] for b in range(B) if not o[b][n]]
        if rows:
            means[n] = [sum(col) / len(rows) for col in zip(*rows)]
    bg = [(b, n) for b in range(B) for n in range(N) if not o[b][n]]
    obj = [(b, n) for b in range(B) for n in range(N) if o[b][n] and n in means]
    bg_mean = [sum(x[b][n][c] for b, n in bg) / len(bg) for c in range(C)]
    spread = sum(sq(x[b][n], bg_mean) for b, n in bg) / len(bg)
    resid = sum(sq(x[b][n], means[n]) for b, n in bg) / len(bg)
    far = sum(sq(x[b][n], means[n]) for b, n in obj) / len(obj)
    return 1 - resid / spread, far / resid


def test_object_contrast_matches_a_loop_reference_and_ignores_offset_and_scale():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(5, 12, 3, generator=g)
    objects = torch.rand(5, 12, generator=g) < 0.3
    objects[:, 0] = True  # a position with no background anywhere: its object tokens are left out
    r = object_contrast(tokens, objects)
    share, contrast = _object_contrast_by_loops(tokens, objects)
    assert r["background_position_share"] == pytest.approx(share, rel=1e-9)
    assert r["object_contrast"] == pytest.approx(contrast, rel=1e-9)
    assert r["object_share"] == pytest.approx(float(objects.float().mean()))
    moved = object_contrast(40.0 * tokens + torch.randn(3, generator=g) * 1e3, objects)  # a large shared vector
    assert moved["background_position_share"] == pytest.approx(share, rel=1e-6)
    assert moved["object_contrast"] == pytest.approx(contrast, rel=1e-6)


def test_object_contrast_reads_a_background_given_by_position_and_objects_that_stand_out():
    g = torch.Generator().manual_seed(1)
    pos = torch.randn(1, 16, 4, generator=g).expand(6, 16, 4)
    objects = torch.zeros(6, 16, dtype=torch.bool)
    objects[:3, 5] = True
    content = torch.randn(6, 16, 4, generator=g)
    # background = position + a little content; objects = position + a large shift: they stand out
    tokens = pos + 0.1 * content + 5.0 * objects.unsqueeze(-1)
    r = object_contrast(tokens, objects)
    assert r["background_position_share"] > 0.95 and r["object_contrast"] > 100
    # content only (every position alike): position explains almost nothing; objects like background: contrast ~1
    flat = object_contrast(content, objects)
    assert flat["background_position_share"] < 0.3 and 0.2 < flat["object_contrast"] < 5
    exact = object_contrast(pos + 5.0 * objects.unsqueeze(-1), objects)  # background exactly its positions' mean
    assert exact["background_position_share"] == pytest.approx(1.0) and exact["object_contrast"] == float("inf")


def test_object_contrast_refuses_mismatched_objects_and_is_nan_without_objects():
    tokens = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match="objects must be a bool"):
        object_contrast(tokens, torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="objects must be a bool"):
        object_contrast(tokens, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="tokens must be"):
        object_contrast(torch.randn(2, 4), torch.zeros(2, 4, dtype=torch.bool))
    r = object_contrast(tokens, torch.zeros(2, 4, dtype=torch.bool))
    assert r["object_share"] == 0.0 and math.isnan(r["object_contrast"])


def _r2_by_lstsq(xtr, ytr, xte, yte):
    """An independent reference for target_r2 without its penalty: least squares with a bias column."""
    ones = torch.ones(xtr.shape[0], 1, dtype=torch.float64)
    sol = torch.linalg.lstsq(torch.cat([xtr.double(), ones], 1), ytr.double()).solution
    pred = torch.cat([xte.double(), torch.ones(xte.shape[0], 1, dtype=torch.float64)], 1) @ sol
    return 1 - float((pred - yte).pow(2).sum()) / float((yte - ytr.double().mean(0)).pow(2).sum())


def test_target_r2_matches_least_squares_and_reads_what_the_tokens_carry():
    g = torch.Generator().manual_seed(0)
    targets = torch.randn(2, 400, 5, generator=g)  # (train / test, tokens, D)
    mix = torch.randn(5, 8, generator=g)
    # tokens: an invertible-enough linear image of the targets, an offset and a little noise -> R^2 near 1
    tokens = targets @ mix + 3.0 + 0.05 * torch.randn(2, 400, 8, generator=g)
    r = target_r2(tokens[0], targets[0], tokens[1], targets[1], ridge=0.0)
    assert r == pytest.approx(_r2_by_lstsq(tokens[0], targets[0], tokens[1], targets[1]), abs=1e-9)
    assert r > 0.99
    # half the target dimensions carried, the other half not at all: about half the variance
    half = torch.cat([targets[..., :2] @ mix[:2], torch.randn(2, 400, 8, generator=g)], -1)
    assert 0.3 < target_r2(half[0], targets[0], half[1], targets[1]) < 0.5
    # tokens independent of the targets: about 0 (a little below: the fit's own noise)
    noise = torch.randn(2, 400, 8, generator=g)
    assert -0.1 < target_r2(noise[0], targets[0], noise[1], targets[1]) <= 0.02
    # (B, N, C) input reads the same as flattened tokens; the penalty only shrinks
    r3 = target_r2(tokens[0].view(4, 100, 8), targets[0].view(4, 100, 5), tokens[1].view(4, 100, 8),
                   targets[1].view(4, 100, 5), ridge=0.0)
    assert r3 == pytest.approx(r, abs=1e-12)
    assert target_r2(tokens[0], targets[0], tokens[1], targets[1], ridge=10.0) < r


def test_target_r2_refuses_mismatched_inputs():
    x, y = torch.randn(10, 4), torch.randn(10, 3)
    with pytest.raises(ValueError, match="over the same tokens"):
        target_r2(x, y[:9], x, y)
    with pytest.raises(ValueError, match="widths differ"):
        target_r2(x, y, torch.randn(10, 5), y)
    with pytest.raises(ValueError, match="ridge >= 0"):
        target_r2(x, y, x, y, ridge=-1.0)
