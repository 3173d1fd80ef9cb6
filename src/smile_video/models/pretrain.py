"""The masked feature-prediction model (paper 3.2): encoder on visible tokens, shallow decoder on all tokens.

State-dict keys equal the official SMILE / VideoMAE pretraining layout: ``encoder.*``, ``encoder_to_decoder.weight``,
``mask_token``, ``decoder.blocks.*``, ``decoder.norm.*``, ``decoder.head.*`` (positions are fixed, not stored).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from .vit import VideoViTDecoder, VideoViTEncoder, check_mask, mask_indices, position_table, truncated_normal_

__all__ = ["PretrainModel", "standardize_tokens"]


def standardize_tokens(x: Tensor, eps: float = 1e-5) -> Tensor:
    """x (B, N, C) -> each channel standardised over all B * N tokens (biased variance; BatchNorm's training-mode
    arithmetic without affine parameters or running statistics)."""
    B, N, C = x.shape
    return F.batch_norm(x.reshape(B * N, C), None, None, training=True, eps=eps).view(B, N, C)


class PretrainModel(nn.Module):
    """Predicts the teacher's target (dimension ``target_dim``) of every masked token.

    ``visible_head=True`` adds a linear head on the encoder's visible output tokens that regresses their own targets
    (``teacher.visible_weight``: UMT's unmasked-token alignment); its output comes back with ``forward(...,
    visible=True)``.
    """

    def __init__(self, cfg: ModelConfig, target_dim: int, visible_head: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.target_dim = target_dim
        self.visible_head = nn.Linear(cfg.embed_dim, target_dim) if visible_head else None
        self.encoder = VideoViTEncoder(cfg, use_mean_pooling=False)
        self.encoder_to_decoder = nn.Linear(cfg.embed_dim, cfg.decoder_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        self.decoder = VideoViTDecoder(cfg, target_dim)
        self.register_buffer("decoder_pos_embed", position_table(cfg.grid, cfg.decoder_dim, cfg.pos_embed)[None],
                             persistent=False)
        nn.init.xavier_uniform_(self.encoder_to_decoder.weight)
        truncated_normal_(self.mask_token, std=0.02)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.encoder.grad_checkpointing = enable
        self.decoder.grad_checkpointing = enable

    def forward(self, x: Tensor, mask: Tensor, visible: bool = False,
                num_masked: int | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """x: (B, 3, T, H, W) normalised clip; mask: (B, N) bool, True = masked -> (B, N_masked, target_dim).

        Predictions are in ascending token index, aligned with ``targets[mask].view(B, -1, D)``. With
        ``visible=True`` (needs the visible head) also the visible tokens' own predictions, (B, N_vis, target_dim) in
        ascending token index, aligned with ``targets[~mask].view(B, -1, D)``: returns (masked, visible).
        `num_masked`: every row's masked count when the caller knows it (the training step passes
        ``masking.num_masked(grid, ratio)``): the mask's content is then not checked, and the forward has static
        shapes and no host sync (``torch.compile`` without a graph break, CUDA graphs); None: `check_mask` counts.
        """
        if visible and self.visible_head is None:
            raise ValueError("PretrainModel: visible=True needs the visible head (PretrainModel(..., visible_head=True)"
                             ", teacher.visible_weight > 0)")
        B = x.shape[0]
        num_masked = check_mask(mask, B, self.cfg.num_tokens, num_masked)
        vis_idx, masked_idx = mask_indices(mask, num_masked)  # (B, N_vis), (B, N_masked), ascending
        tokens = self.encoder(x, mask, num_masked, visible=vis_idx)  # (B, N_vis, C)
        own = self.visible_head(tokens) if visible else None  # (B, N_vis, target_dim)
        if self.cfg.decoder_input_norm == "batch":
            tokens = standardize_tokens(tokens)
        visible_tokens = self.encoder_to_decoder(tokens)  # (B, N_vis, Cd)
        pos = self.decoder_pos_embed[0].to(visible_tokens.dtype)  # (N, Cd)
        full = torch.cat([visible_tokens + pos[vis_idx], self.mask_token.to(visible_tokens.dtype) + pos[masked_idx]],
                         dim=1)  # (B, N, Cd): visible, then masked, each in ascending token index
        attn_mask = None
        if self.cfg.decoder_attention == "frame":  # a decoder token attends to its own time step's tokens only
            per_step = self.cfg.grid[1] * self.cfg.grid[2]
            order = torch.cat([vis_idx, masked_idx], dim=1).div(per_step, rounding_mode="floor")  # (B, N) time step
            attn_mask = (order[:, :, None] == order[:, None, :])[:, None]  # (B, 1, N, N)
        pred = self.decoder(full, num_masked, attn_mask)  # (B, N_masked, target_dim)
        return pred if own is None else (pred, own)
