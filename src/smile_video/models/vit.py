"""VideoMAE-compatible ViT: tubelet embedding, fixed sinusoid positions, pre-norm blocks, encoder and decoder.

Module names mirror the official VideoMAE / SMILE layout so their checkpoints load without renaming:
``patch_embed.proj``, ``blocks.{i}.{norm1, attn.qkv, attn.q_bias, attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2}``,
``norm``. The position table is fixed (not a parameter) and is not part of the state dict.

Token order is (t', h', w') row-major (docs/design.md); masks are ``(B, N)`` bool, True = masked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..config import ModelConfig
from ..config.sections import POSITION_KINDS

__all__ = ["sinusoid_table", "position_table", "POSITION_KINDS", "drop_path", "Attention", "Mlp", "Block",
           "PatchEmbed", "VideoViTEncoder", "VideoViTDecoder", "check_mask", "mask_indices", "gather_tokens",
           "truncated_normal_", "LN_EPS"]

LN_EPS = 1e-6  # every LayerNorm of the VideoMAE ViT


def sinusoid_table(num_positions: int, dim: int) -> Tensor:
    """VideoMAE's fixed 1-D sinusoid table over flattened tokens -> (num_positions, dim) float32.

    angle[p, j] = p / 10000 ** (2 * (j // 2) / dim); even channels take sin, odd channels cos. Computed in float64
    and rounded once, as the reference (numpy) implementation does.
    """
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (P, 1)
    j = torch.arange(dim, dtype=torch.float64)[None, :]  # (1, D)
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)  # (P, D)
    table = torch.empty_like(angle)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.float()


def position_table(grid: tuple[int, int, int], dim: int, kind: str = "flat") -> Tensor:
    """Fixed positions of a (T', H', W') token grid, flattened in token order -> (T' H' W', dim) float32.

    ``flat``: VideoMAE's (and SMILE's) `sinusoid_table` over the flattened token index, so a token's vertical
    neighbour is W' indices away and its next time step H' W' away. ``separable``: one 1-D sinusoid table per axis,
    concatenated (time: a quarter of the channels, rounded to even; height and width: half of the rest each), the
    3-D form of MAE's 2-D sin-cos table: a token's row, column and time step each have channels of their own.
    """
    t, h, w = grid
    if kind == "flat":
        return sinusoid_table(t * h * w, dim)
    if kind != "separable":
        raise ValueError(f"position kind must be one of {POSITION_KINDS}, got {kind!r}")
    if dim % 2 or dim < 6:
        raise ValueError(f"separable positions need an even width of at least 6, got {dim}")
    space = 2 * ((dim - 2 * round(dim / 8)) // 4)  # channels for each of height and width (even)
    ct = dim - 2 * space  # time (even, about a quarter)
    tt, yy, xx = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat([sinusoid_table(t, ct)[tt.flatten()], sinusoid_table(h, space)[yy.flatten()],
                      sinusoid_table(w, space)[xx.flatten()]], dim=1)


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability p, rescale the rest.

    Like ``nn.Dropout`` it draws from torch's global generator (seeded by the training engine), so that activation
    checkpointing, which replays the global RNG state, recomputes the same drop pattern.
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)  # (B, 1, 1)
    return x * torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep).div_(keep)


class Attention(nn.Module):
    """Multi-head self-attention; ``qkv`` has no bias, q and v have their own biases, k's bias is zero."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """x: (B, N, C); attn_mask: None, or (B, 1, N, N) bool, True where query token i may attend to key token j
        (every row needs at least one True)."""
        B, N, C = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])  # (3C,)
        qkv = F.linear(x, self.qkv.weight, bias)  # (B, N, 3C)
        qkv = qkv.view(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)  # (3, B, nh, N, hs)
        q, k, v = qkv.unbind(0)  # one backward op for the three (indexing would add three full-size zero fills)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, nh, N, hs), scale hs ** -0.5
        return self.proj(y.transpose(1, 2).reshape(B, N, C))  # (B, N, C)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)), each with drop path."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = drop_path

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        x = x + drop_path(self.attn(self.norm1(x), attn_mask), self.drop_path, self.training)  # (B, N, C)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)  # (B, N, C)


def _run_blocks(blocks: nn.ModuleList, x: Tensor, use_checkpoint: bool, attn_mask: Tensor | None = None) -> Tensor:
    for blk in blocks:
        if use_checkpoint and torch.is_grad_enabled():
            x = checkpoint(blk, x, attn_mask, use_reentrant=False)
        else:
            x = blk(x, attn_mask)
    return x


def _init_weights(module: nn.Module) -> None:
    """VideoMAE pretraining init: xavier-uniform linears with zero bias, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def check_mask(mask: Tensor, batch: int, num_tokens: int, num_masked: int | None = None) -> int:
    """Check a ``(B, N)`` bool mask (True = masked) and return the number of masked tokens per sample.

    Every sample must mask the same number of tokens (the visible tokens are packed into one tensor). With
    `num_masked` given (the caller knows the count, as the training step does) only the dtype, the shape and the
    count's range are checked: the mask's content is not read, so no host sync and no graph break.
    """
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = masked), got dtype {mask.dtype}")
    if tuple(mask.shape) != (batch, num_tokens):
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected (B, N) = ({batch}, {num_tokens})")
    if num_masked is not None:
        if not 0 <= num_masked <= num_tokens:
            raise ValueError(f"num_masked must be in [0, {num_tokens}], got {num_masked}")
        return num_masked
    counts = mask.sum(dim=1)  # (B,)
    if batch and bool((counts != counts[0]).any()):
        raise ValueError(f"every sample must mask the same number of tokens; masked counts per sample: "
                         f"{counts.tolist()}")
    return int(counts[0]) if batch else 0


def mask_indices(mask: Tensor, num_masked: int) -> tuple[Tensor, Tensor]:
    """(B, N) bool mask, True = masked, exactly `num_masked` True per row -> (visible (B, N - num_masked), masked
    (B, num_masked)) token indices, each in ascending order: ``x[mask].view(B, -1, C)`` equals
    ``x.gather(1, masked[..., None].expand(-1, -1, C))``.

    A stable sort of the mask, so every shape is static (no data-dependent boolean indexing and no host sync):
    ``torch.compile`` traces it without a graph break and CUDA graphs can capture it. The count is the caller's
    guarantee (`check_mask` verifies it, with a sync; `masking.make_mask` masks exactly ``num_masked(grid, ratio)``).
    """
    order = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)  # (B, N): visible ascending, then masked ascending
    n_vis = mask.shape[1] - num_masked
    return order[:, :n_vis], order[:, n_vis:]


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """x (B, N, C), index (B, M) -> (B, M, C): the tokens at `index`, row by row."""
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


class PatchEmbed(nn.Module):
    """Tubelet embedding: (B, 3, T, H, W) -> (B, N, C), tokens in (t', h', w') order.

    The parameters are a Conv3d's (``proj``, kernel = stride = (tubelet, patch, patch): the official layout), but
    the embedding is computed as what that convolution is, a linear map of each tubelet's pixels: with a mask, only
    the visible tubelets are gathered and embedded (a fifth of them at ratio 0.8), and a matmul is much faster than
    cuDNN's strided 3-D convolution on GPUs (docs/benchmarks.md).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        k = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(cfg.in_chans, cfg.embed_dim, kernel_size=k, stride=k)

    def forward(self, x: Tensor, visible: Tensor | None = None) -> Tensor:
        """x: (B, C_in, T, H, W); visible: (B, N_vis) long token indices (`mask_indices`), or None (all) ->
        (B, N_vis, C), in the order of `visible`."""
        B, C, T, H, W = x.shape
        t, p, _ = self.proj.kernel_size
        cells = x.reshape(B, C, T // t, t, H // p, p, W // p, p).permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T', H', W', ...)
        if visible is None:
            cells = cells.reshape(B, -1, C * t * p * p)  # (B, N, C_in t p p)
        else:  # gather the visible tubelets only, straight from the strided view (no copy of the whole clip)
            hw, w = cells.shape[2] * cells.shape[3], cells.shape[3]
            rows = torch.arange(B, device=x.device)[:, None]  # (B, 1)
            cells = cells[rows, visible // hw, visible % hw // w, visible % w]  # (B, N_vis, C_in, t, p, p)
            cells = cells.reshape(B, -1, C * t * p * p)  # (B, N_vis, C_in t p p)
        return F.linear(cells, self.proj.weight.flatten(1), self.proj.bias)  # (B, N_vis, C)


class VideoViTEncoder(nn.Module):
    """The student encoder (VideoMAE ViT with joint space-time attention).

    With ``use_mean_pooling=False`` (pretraining layout) the tokens go through a final ``norm``; with
    ``use_mean_pooling=True`` (finetuned layout) there is no ``norm`` and an ``fc_norm`` after pooling lives outside.
    """

    def __init__(self, cfg: ModelConfig, use_mean_pooling: bool = False) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.use_mean_pooling = use_mean_pooling
        self.grad_checkpointing = cfg.grad_checkpointing
        self.patch_embed = PatchEmbed(cfg)
        self.register_buffer("pos_embed", position_table(cfg.grid, cfg.embed_dim, cfg.pos_embed)[None],
                             persistent=False)
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist()  # linearly increasing drop path
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, r) for r in rates)
        self.norm = nn.Identity() if use_mean_pooling else nn.LayerNorm(cfg.embed_dim, eps=LN_EPS)
        _init_weights(self)

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def _check_input(self, x: Tensor) -> None:
        c = self.cfg
        expected = (c.in_chans, c.num_frames, c.img_size, c.img_size)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"encoder input must be (B, C, T, H, W) = (B, {', '.join(map(str, expected))}) "
                             f"(model.in_chans, num_frames, img_size, img_size), got {tuple(x.shape)}")

    def forward(self, x: Tensor, mask: Tensor | None = None, num_masked: int | None = None,
                visible: Tensor | None = None) -> Tensor:
        """x: (B, 3, T, H, W) ImageNet-normalised; mask: (B, N) bool, True = masked -> (B, N_vis, C) visible tokens,
        ascending token order. `num_masked`: the masked count of every row when the caller knows it (the training
        step does): no check of the mask's content, so no host sync and no graph break under ``torch.compile``;
        None: `check_mask` checks the mask and counts. `visible`: the mask's visible indices when the caller has
        already computed them (``mask_indices(mask, num_masked)[0]``; `PretrainModel` does), so the mask is not
        sorted again."""
        return self._encode(x, mask, num_masked, visible)

    def forward_tokens(self, x: Tensor) -> Tensor:
        """All tokens: (B, 3, T, H, W) -> (B, N, C) (after ``norm`` unless mean pooling)."""
        return self._encode(x, None)

    def _encode(self, x: Tensor, mask: Tensor | None, num_masked: int | None = None,
                visible: Tensor | None = None) -> Tensor:
        self._check_input(x)
        if mask is None:
            tokens = self.patch_embed(x)  # (B, N, C)
            tokens = tokens + self.pos_embed.to(tokens.dtype)
        else:
            B, N = x.shape[0], self.cfg.num_tokens
            num_masked = check_mask(mask, B, N, num_masked)
            if visible is None:
                visible, _ = mask_indices(mask, num_masked)  # (B, N_vis)
            tokens = self.patch_embed(x, visible)  # (B, N_vis, C), ascending token order
            pos = self.pos_embed[0][visible]  # (B, N_vis, C)
            tokens = tokens + pos.to(tokens.dtype)
        tokens = _run_blocks(self.blocks, tokens, self.grad_checkpointing and self.training)
        return self.norm(tokens)  # (B, N_vis, C)


class VideoViTDecoder(nn.Module):
    """Shallow decoder: blocks at decoder width, ``norm``, and a ``head`` to the target dimension."""

    def __init__(self, cfg: ModelConfig, target_dim: int) -> None:
        super().__init__()
        if target_dim < 1:
            raise ValueError(f"decoder target_dim must be >= 1, got {target_dim}")
        self.grad_checkpointing = cfg.grad_checkpointing
        rates = torch.linspace(0, cfg.drop_path, cfg.decoder_depth).tolist()
        self.blocks = nn.ModuleList(Block(cfg.decoder_dim, cfg.decoder_num_heads, cfg.mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(cfg.decoder_dim, eps=LN_EPS)
        self.head = nn.Linear(cfg.decoder_dim, target_dim)
        _init_weights(self)

    def forward(self, x: Tensor, num_predicted: int, attn_mask: Tensor | None = None) -> Tensor:
        """x: (B, N_vis + N_masked, Cd), the masked tokens last -> (B, num_predicted, target_dim) for the last ones.
        attn_mask: None (every token attends to every token) or (B, 1, N, N) bool, True = may attend."""
        x = _run_blocks(self.blocks, x, self.grad_checkpointing and self.training, attn_mask)  # (B, N, Cd)
        x = x[:, x.shape[1] - num_predicted:]  # (B, num_predicted, Cd); safe for num_predicted == 0
        return self.head(self.norm(x))  # (B, num_predicted, target_dim)


def truncated_normal_(t: Tensor, std: float = 0.02) -> Tensor:
    """In-place truncated normal in [-2 std, 2 std] (global RNG, used only at construction)."""
    return nn.init.trunc_normal_(t, std=std, a=-2 * std, b=2 * std)

