"""Representation diagnostics: is an encoder's output collapsed, low-rank, or static over time?

Pure functions of encoder output tokens ``(B, N, C)`` in (t', h', w') order (``grid = (T', H', W')``, docs/design.md),
computed in float64. They answer three questions about a frozen encoder on a set of clips:

- how much of the output is one constant vector (``constant_share``);
- how many directions the variation around the mean uses (``effective_rank``, Roy & Vetterli 2007);
- where the variance lies: across clips, over time within a clip, or over space within a time step (the three add
  up to the per-token variance), and how alike the time steps of a clip are once the constant part is removed
  (``similarity_centred``; the raw cosine of Fig. 4 reads ~1 whenever a large shared offset dominates).

Variances are population variances (divide by the count), so the decomposition is exact. See docs/evaluation.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from .similarity import time_step_features

__all__ = ["check_tokens", "effective_rank", "centred_frame_similarity", "feature_stats", "attention_entropy",
           "patch_filter_stats", "residual_stream", "encoder_inside", "object_contrast", "target_r2", "STAT_KEYS",
           "STREAM_KEYS"]

# feature_stats' keys, in the order the CLI prints them
STAT_KEYS = ("constant_share", "effective_rank", "effective_rank_clips", "var_total", "var_across_clips",
             "var_over_time", "var_space", "clip_share", "time_share", "space_share", "similarity_raw",
             "similarity_centred")

# residual_stream's keys per stage, in the order the CLI prints them
STREAM_KEYS = ("rms", "constant_share", "clip_share", "token_share")

_EPS = torch.finfo(torch.float64).eps


def check_tokens(tokens: Tensor, grid: tuple[int, int, int]) -> None:
    """Raise ValueError unless tokens is a finite floating (B, N, C) tensor with B, C >= 1 and N = T' * H' * W'."""
    if len(grid) != 3 or any(int(g) < 1 for g in grid):
        raise ValueError(f"grid must be (T', H', W') of positive ints, got {tuple(grid)}")
    if not isinstance(tokens, Tensor) or tokens.dim() != 3:
        shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be (B, N, C), got {shape}")
    b, n, c = tokens.shape
    t, h, w = grid
    if b < 1 or c < 1:
        raise ValueError(f"tokens (B, N, C) = {(b, n, c)} must hold at least one clip and one channel")
    if n != t * h * w:
        raise ValueError(f"tokens have N={n}, but the grid {tuple(grid)} has {t * h * w} tokens")
    if not tokens.is_floating_point():
        raise ValueError(f"tokens must be floating point, got {tokens.dtype}")
    if not torch.isfinite(tokens).all():
        raise ValueError("tokens hold NaN or inf values: the encoder's output is not finite")


def effective_rank(x: Tensor, centre: bool = True) -> float:
    """Effective rank (Roy & Vetterli 2007) of a matrix x (M, C): exp(H(p)), p_k = s_k / sum_k s_k over its singular
    values s, H the Shannon entropy (nats). Between 1 and min(M, C); 0.0 for a matrix with no variation.

    centre: subtract the mean row first (the rank of the variation around the mean). Singular values at the float64
    rounding level of the uncentred matrix (<= max(M, C) * eps * ||x||_F) count as zero.
    """
    if x.dim() != 2 or min(x.shape) < 1:
        raise ValueError(f"effective_rank needs a non-empty (M, C) matrix, got {tuple(x.shape)}")
    x = x.double()
    tol = max(x.shape) * _EPS * float(torch.linalg.matrix_norm(x))
    if centre:
        x = x - x.mean(dim=0, keepdim=True)  # (M, C)
    s = torch.linalg.svdvals(x)  # (min(M, C),)
    s = s[s > tol]
    if s.numel() == 0:
        return 0.0
    p = s / s.sum()
    return math.exp(float(-(p * p.log()).sum()))


def centred_frame_similarity(tokens: Tensor, grid: tuple[int, int, int], mean: Tensor | None = None) -> Tensor:
    """tokens (B, N, C) -> (B, T', T') float64 cosine similarity between the time steps of each clip after subtracting
    `mean` (C,) from every time-step feature (`time_step_features`).

    mean: None = the dataset mean time-step feature (over clips and time steps, which is the mean token); pass
    zeros for the raw map of `similarity.frame_similarity`. A centred feature at the rounding level of the uncentred
    ones (norm <= 1e-12 x the largest) has no direction: its entries (diagonal too) are NaN.
    """
    check_tokens(tokens, grid)
    f = time_step_features(tokens.double(), grid)  # (B, T', C)
    c = f.shape[-1]
    if mean is None:
        mean = f.mean(dim=(0, 1))  # (C,)
    elif mean.shape != (c,):
        raise ValueError(f"mean must be (C,) = ({c},), got {tuple(mean.shape)}")
    scale = f.norm(dim=-1).max()
    fc = f - mean.to(f)  # (B, T', C)
    norm = fc.norm(dim=-1, keepdim=True)  # (B, T', 1)
    dead = norm <= 1e-12 * scale  # (B, T', 1)
    u = fc / norm.clamp_min(torch.finfo(torch.float64).tiny)  # (B, T', C)
    sim = u @ u.transpose(1, 2)  # (B, T', T')
    undefined = dead | dead.transpose(1, 2)  # (B, T', T')
    return sim.masked_fill(undefined, float("nan"))


def _off_diagonal_nanmean(sim: Tensor) -> float:
    """sim (B, T', T') -> mean of the defined (non-NaN) off-diagonal entries; NaN when there are none."""
    t = sim.shape[-1]
    off = sim[:, ~torch.eye(t, dtype=torch.bool, device=sim.device)]  # (B, T' * (T' - 1))
    return float(off.nanmean()) if off.numel() else float("nan")


def feature_stats(tokens: Tensor, grid: tuple[int, int, int]) -> dict[str, float]:
    """Diagnostics of encoder output tokens (B, N, C) in (t', h', w') order, grid (T', H', W'), over all B clips.

    Returns (keys in `STAT_KEYS` order):
      constant_share        ||mu||^2 / mean_i ||x_i||^2, mu the mean token: the share of the squared norm that is one
                            constant vector (1 = constant output; NaN when every token is zero)
      effective_rank        effective rank of the centred (B*N, C) token matrix
      effective_rank_clips  effective rank of the centred (B, C) clip-mean matrix
      var_total             per-token variance, mean over channels (population variance over all B*N tokens)
      var_across_clips      variance of the clip means across clips, mean over channels
      var_over_time         variance of the T' time-step features within a clip, mean over channels and clips
      var_space             variance of the H'*W' tokens within a time step, mean over channels, clips and steps;
                            var_total = var_across_clips + var_over_time + var_space
      clip_share, time_share, space_share   the three divided by var_total (NaN when it is ~0)
      similarity_raw        off-diagonal mean of the (T', T') time-step cosine similarity (as
                            `similarity.frame_similarity`), over clips
      similarity_centred    the same after subtracting the dataset mean time-step feature (`centred_frame_similarity`)
    """
    check_tokens(tokens, grid)
    b, n, c = tokens.shape
    t, h, w = grid
    x = tokens.double()  # (B, N, C)
    flat = x.reshape(b * n, c)  # (B*N, C)
    mu = flat.mean(dim=0)  # (C,)
    mean_sq = float(flat.pow(2).sum(dim=1).mean())
    clip_mean = x.mean(dim=1)  # (B, C)
    steps = x.reshape(b, t, h * w, c)  # (B, T', H'W', C)
    step_mean = steps.mean(dim=2)  # (B, T', C) = time_step_features
    var_total = float(flat.var(dim=0, correction=0).mean())
    var_clips = float(clip_mean.var(dim=0, correction=0).mean())
    var_time = float(step_mean.var(dim=1, correction=0).mean())
    var_space = float(steps.var(dim=2, correction=0).mean())

    def share(v: float) -> float:  # NaN when the tokens do not vary beyond float64 rounding
        return v / var_total if var_total > 1e-24 * mean_sq else float("nan")

    return {
        "constant_share": float(mu.pow(2).sum()) / mean_sq if mean_sq > 0 else float("nan"),
        "effective_rank": effective_rank(flat),
        "effective_rank_clips": effective_rank(clip_mean),
        "var_total": var_total,
        "var_across_clips": var_clips,
        "var_over_time": var_time,
        "var_space": var_space,
        "clip_share": share(var_clips),
        "time_share": share(var_time),
        "space_share": share(var_space),
        "similarity_raw": _off_diagonal_nanmean(centred_frame_similarity(x, grid, torch.zeros(c, dtype=x.dtype))),
        "similarity_centred": _off_diagonal_nanmean(centred_frame_similarity(x, grid, mu)),
    }


def object_contrast(tokens: Tensor, objects: Tensor) -> dict[str, float]:
    """Do an encoder's tokens single out pasted objects, and does a background reach them only through its position?

    tokens: (B, N, C) output tokens of B clips; objects: (B, N) bool, True where a pasted object covers the token (e.g.
    `masking.object_tokens` of the clips' alpha). With m_n the mean background token at position n over the clips
    (positions where every clip has an object are left out):

    - ``background_position_share``: 1 - E_bg ||x - m_n||^2 / E_bg ||x - mean_bg||^2, the share of the background
      tokens' variation that their position explains (1: the output ignores what the background shows; a random
      encoder passes the background's content through, about 0.3 on noise);
    - ``object_contrast``: E_obj ||x - m_n||^2 / E_bg ||x - m_n||^2, how far object tokens lie from what the background
      gives at their place, relative to the background's own spread there (1: objects do not stand out);
    - ``object_share``: the fraction of tokens that are object tokens.

    Blind to a constant offset and to scale, so a shared vector (`feature_stats`' constant_share) does not hide or
    inflate either number. NaN where undefined (no object or no background token, or no variation at all); an
    object contrast of inf when the background tokens are exactly their positions' means and the objects are not.
    """
    if not isinstance(tokens, Tensor) or tokens.dim() != 3 or not tokens.is_floating_point():
        raise ValueError(f"tokens must be a floating (B, N, C) tensor, got "
                         f"{tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__}")
    if not isinstance(objects, Tensor) or objects.dtype != torch.bool or objects.shape != tokens.shape[:2]:
        got = f"{tuple(objects.shape)} {objects.dtype}" if isinstance(objects, Tensor) else type(objects).__name__
        raise ValueError(f"objects must be a bool (B, N) tensor matching tokens {tuple(tokens.shape[:2])}, got {got}")
    x = tokens.double()
    bg = (~objects).double().unsqueeze(-1)  # (B, N, 1)
    per_pos = bg.sum(dim=0)  # (N, 1) background tokens at each position
    m = (x * bg).sum(dim=0) / per_pos.clamp(min=1)  # (N, C) mean background token per position
    covered = per_pos.squeeze(-1) > 0  # (N,) positions with a background mean
    dev = (x - m).pow(2).sum(dim=-1)  # (B, N) squared distance to the background's mean at that place
    is_bg, is_obj = ~objects, objects & covered
    nan = float("nan")
    out = {"object_share": float(objects.double().mean()), "background_position_share": nan, "object_contrast": nan}
    if not is_bg.any():
        return out
    bg_tokens = x[is_bg]  # (M, C)
    spread = float((bg_tokens - bg_tokens.mean(dim=0)).pow(2).sum(dim=-1).mean())
    resid = float(dev[is_bg].mean())
    if spread > _EPS:
        out["background_position_share"] = 1.0 - resid / spread
    if is_obj.any():
        far = float(dev[is_obj].mean())
        out["object_contrast"] = far / resid if resid > 0 else (math.inf if far > 0 else nan)
    return out


def target_r2(train_tokens: Tensor, train_targets: Tensor, test_tokens: Tensor, test_targets: Tensor,
              ridge: float = 1e-2) -> float:
    """How much of a teacher's targets an encoder's tokens carry, token by token: the held-out R^2 of a ridge
    regression from each token to the target at the same token.

    train_tokens: (M, C) or (B, N, C) tokens, train_targets: (M, D) or (B, N, D) the targets at the same tokens
    (e.g. `normalize_targets(teacher(clips), norm)`); test_*: the same for held-out clips. The regression has a bias
    and an L2 penalty of ``ridge`` times the mean token variance (scale-free). Returns 1 - SSE / SST on the test
    tokens, SST around the train targets' mean: 0 = no better than that mean, 1 = every target recovered; negative
    when worse than the mean. Blind to a constant offset and to any invertible linear map of the tokens (up to the
    penalty). Computed in float64.
    """
    pairs = {"train": (train_tokens, train_targets), "test": (test_tokens, test_targets)}
    flat = {}
    for split, (x, y) in pairs.items():
        if not (isinstance(x, Tensor) and isinstance(y, Tensor)) or x.dim() not in (2, 3) or x.dim() != y.dim() \
                or x.shape[:-1] != y.shape[:-1] or not (x.is_floating_point() and y.is_floating_point()):
            shapes = [tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__ for t in (x, y)]
            raise ValueError(f"target_r2: {split} tokens and targets must be floating (M, C) / (M, D) or (B, N, C) / "
                             f"(B, N, D) tensors over the same tokens, got {shapes[0]} and {shapes[1]}")
        flat[split] = (x.reshape(-1, x.shape[-1]).double(), y.reshape(-1, y.shape[-1]).double())
    (xtr, ytr), (xte, yte) = flat["train"], flat["test"]
    if xtr.shape[1] != xte.shape[1] or ytr.shape[1] != yte.shape[1]:
        raise ValueError(f"target_r2: train and test widths differ (tokens {xtr.shape[1]} / {xte.shape[1]}, targets "
                         f"{ytr.shape[1]} / {yte.shape[1]})")
    if xtr.shape[0] < 2 or ridge < 0:
        raise ValueError(f"target_r2: needs >= 2 train tokens and ridge >= 0, got {xtr.shape[0]} and {ridge}")
    mx, my = xtr.mean(dim=0), ytr.mean(dim=0)
    a, b = xtr - mx, ytr - my  # (M, C), (M, D)
    cov = a.T @ a / a.shape[0]  # (C, C)
    penalty = ridge * float(cov.diagonal().mean()) + _EPS
    w = torch.linalg.solve(cov + penalty * torch.eye(cov.shape[0], dtype=cov.dtype), a.T @ b / a.shape[0])  # (C, D)
    sse = float(((xte - mx) @ w + my - yte).pow(2).sum())
    sst = float((yte - my).pow(2).sum())
    return 1.0 - sse / sst if sst > 0 else float("nan")


@torch.no_grad()
def attention_entropy(encoder: torch.nn.Module, x: Tensor) -> list[float]:
    """Mean entropy (nats) of each block's self-attention distributions over all tokens of the clips `x`.

    encoder: a `VideoViTEncoder` (or `VideoClassifier`); x: (B, 3, T, H, W) normalised clips. Returns one value per
    block: the entropy of a query's attention over the N keys, averaged over queries, heads and clips. Uniform
    attention reads ln N; attention on one key reads 0. A trained ViT whose entropies fall towards 0 in every block has
    the "attention entropy collapse" of Zhai et al. (2023), seen with too high a learning rate (docs/fidelity.md).
    The probabilities are those the block computes (its `qkv`, biases and head split), so the block's own output
    equals them applied to its values (tested).
    """
    # zip stops at the last block: the stream after it is never computed
    return [_block_entropy(blk, tokens) for blk, tokens in zip(encoder.blocks, _stages(encoder, x))]


def _stages(encoder: torch.nn.Module, x: Tensor) -> Iterator[Tensor]:
    """The residual stream (B, N, C) of `encoder` on clips x, lazily: after the tubelet embedding plus positions,
    then after each block (what `VideoViTEncoder.forward_tokens` computes, before any final norm)."""
    tokens = encoder.patch_embed(x)  # (B, N, C)
    tokens = tokens + encoder.pos_embed.to(tokens.dtype)
    yield tokens
    for blk in encoder.blocks:
        tokens = blk(tokens)
        yield tokens


def _attention_probs(attn: torch.nn.Module, h: Tensor) -> Tensor:
    """The attention probabilities of a `vit.Attention` on its input h (B, N, C): (B, heads, N, N)."""
    B, N, C = h.shape
    bias = torch.cat([attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias])  # (3C,)
    qkv = torch.nn.functional.linear(h, attn.qkv.weight, bias).view(B, N, 3, attn.num_heads, C // attn.num_heads)
    q, k, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, N, C / heads)
    return (q @ k.transpose(-1, -2) * (C // attn.num_heads) ** -0.5).softmax(dim=-1)


def _block_entropy(blk: torch.nn.Module, tokens: Tensor) -> float:
    """Mean entropy of the attention a `vit.Block` computes on its input stream tokens (B, N, C)."""
    return _entropy(_attention_probs(blk.attn, blk.norm1(tokens)))


def _entropy(p: Tensor) -> float:
    """p (..., N) probability rows -> mean entropy in nats."""
    p = p.double()
    return float(-(p * p.clamp_min(1e-300).log()).sum(dim=-1).mean())


def patch_filter_stats(weight: Tensor) -> dict[str, float]:
    """What a tubelet embedding's filters respond to: weight (C_out, C_in, t, p, p), a `PatchEmbed.proj.weight`.

    Returns shares of the filters' total squared norm (each in [0, 1]):
      flat_share    in each filter's per-channel mean: the part that responds to a flat (uniformly coloured)
                    tubelet, i.e. to a patch's brightness and colour. A random init holds ~1 / (t p p) of it (0.008 at
                    2 x 8 x 8); a pure colour detector holds 1.
      grey_share    in each filter's mean over channels and pixels: the response to a flat grey tubelet (brightness).
      change_share  in each filter minus its mean over the t frames: the part that responds to a change between the
                    frames of a tubelet (motion inside it). A random init holds ~(t - 1) / t; a filter that sums the
                    frames holds 0.
    The shares answer why an encoder transfers badly (docs/fidelity.md, section 9): an embedding pretrained on noise
    backgrounds puts ~17% of its energy in flat_share, and on smooth photo backgrounds its tokens are then dominated by
    the background's colour.
    """
    if not isinstance(weight, Tensor) or weight.dim() != 5:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a tubelet embedding kernel (C_out, C_in, t, p, p), got {shape}")
    w = weight.detach().double()
    total = float(w.pow(2).sum())
    if not total > 0:
        raise ValueError("weight is all zero: its filters respond to nothing")
    cells = w[0, 0].numel()  # t * p * p
    flat = w.mean(dim=(2, 3, 4))  # (C_out, C_in): each filter's response to a flat unit channel, per pixel
    grey = w.mean(dim=(1, 2, 3, 4))  # (C_out,)
    change = w - w.mean(dim=2, keepdim=True)  # (C_out, C_in, t, p, p)
    return {"flat_share": float(flat.pow(2).sum()) * cells / total,
            "grey_share": float(grey.pow(2).sum()) * cells * w.shape[1] / total,
            "change_share": float(change.pow(2).sum()) / total}


@torch.no_grad()
def residual_stream(encoder: torch.nn.Module, x: Tensor) -> list[dict[str, float]]:
    """Where the residual stream's energy lies after the tubelet embedding and after each block, on clips x.

    encoder: a `VideoViTEncoder` (or `VideoClassifier`); x: (B, 3, T, H, W) normalised clips. Returns one dict per
    stage (embedding, then each block) with `STREAM_KEYS`: rms (root mean square of the stream's entries) and the
    shares of its mean squared token norm that are one constant vector over all clips and tokens (constant_share),
    a per-clip offset around it (clip_share, e.g. a background's colour) and what differs between the tokens of a clip
    (token_share, where positions and motion live). The three shares add up to 1. Computed in float64 from the
    blocks' own outputs (the stream `forward_tokens` computes before any final norm).
    """
    return [_stream_shares(tokens) for tokens in _stages(encoder, x)]


@torch.no_grad()
def encoder_inside(encoder: torch.nn.Module, x: Tensor) -> dict[str, list]:
    """`attention_entropy` and `residual_stream` from one pass of the encoder over x (what `smile diagnose` reports):
    {"attention_entropy": one float per block, "residual_stream": one dict per stage}."""
    entropies, stream = [], []
    blocks = iter(encoder.blocks)
    for tokens in _stages(encoder, x):
        stream.append(_stream_shares(tokens))
        blk = next(blocks, None)
        if blk is not None:  # the attention of the block that reads this stage
            entropies.append(_block_entropy(blk, tokens))
    return {"attention_entropy": entropies, "residual_stream": stream}


def _stream_shares(tokens: Tensor) -> dict[str, float]:
    """tokens (B, N, C) -> rms and the constant / per-clip / per-token shares of the mean squared token norm."""
    t = tokens.double()
    mean = t.mean(dim=(0, 1))  # (C,)
    clip_mean = t.mean(dim=1, keepdim=True)  # (B, 1, C)
    total = float(t.pow(2).sum(dim=-1).mean())
    if not total > 0:
        return {"rms": 0.0, "constant_share": float("nan"), "clip_share": float("nan"), "token_share": float("nan")}
    return {"rms": float(t.pow(2).mean().sqrt()),
            "constant_share": float(mean.pow(2).sum()) / total,
            "clip_share": float((clip_mean.squeeze(1) - mean).pow(2).sum(dim=-1).mean()) / total,
            "token_share": float((t - clip_mean).pow(2).sum(dim=-1).mean()) / total}
