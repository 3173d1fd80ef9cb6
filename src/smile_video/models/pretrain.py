"""The masked feature-prediction model (paper 3.2): encoder on visible tokens, shallow decoder on all tokens.

State-dict keys equal the official SMILE / VideoMAE pretraining layout: ``encoder.*``, ``encoder_to_decoder.weight``,
``mask_token``, ``decoder.blocks.*``, ``decoder.norm.*``, ``decoder.head.*`` (positions are fixed, not stored).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from .vit import VideoViTDecoder, VideoViTEncoder, check_mask, position_table, truncated_normal_

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

    def forward(self, x: Tensor, mask: Tensor, visible: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """x: (B, 3, T, H, W) normalised clip; mask: (B, N) bool, True = masked -> (B, N_masked, target_dim).

        Predictions are in ascending token index, aligned with ``targets[mask].view(B, -1, D)``. With
        ``visible=True`` (needs the visible head) also the visible tokens' own predictions, (B, N_vis, target_dim) in
        ascending token index, aligned with ``targets[~mask].view(B, -1, D)``: returns (masked, visible).
        """
        if visible and self.visible_head is None:
            raise ValueError("PretrainModel: visible=True needs the visible head (PretrainModel(..., visible_head=True)"
                             ", teacher.visible_weight > 0)")
        B = x.shape[0]
        num_masked = check_mask(mask, B, self.cfg.num_tokens)
        tokens = self.encoder(x, mask)  # (B, N_vis, C)
        own = self.visible_head(tokens) if visible else None  # (B, N_vis, target_dim)
        if self.cfg.decoder_input_norm == "batch":
            tokens = standardize_tokens(tokens)
        visible_tokens = self.encoder_to_decoder(tokens)  # (B, N_vis, Cd)
        Cd = visible_tokens.shape[-1]
        pos = self.decoder_pos_embed.to(visible_tokens.dtype).expand(B, -1, -1)  # (B, N, Cd)
        pos_vis = pos[~mask].reshape(B, -1, Cd)  # (B, N_vis, Cd)
        pos_masked = pos[mask].reshape(B, -1, Cd)  # (B, N_masked, Cd), ascending token index
        full = torch.cat([visible_tokens + pos_vis, self.mask_token.to(visible_tokens.dtype) + pos_masked],
                         dim=1)  # (B, N, Cd)
        attn_mask = None
        if self.cfg.decoder_attention == "frame":  # a decoder token attends to its own time step's tokens only
            step = torch.arange(self.cfg.num_tokens, device=x.device).div(
                self.cfg.grid[1] * self.cfg.grid[2], rounding_mode="floor").expand(B, -1)  # (B, N) time step
            order = torch.cat([step[~mask].reshape(B, -1), step[mask].reshape(B, -1)], dim=1)  # as in `full`
            attn_mask = (order[:, :, None] == order[:, None, :])[:, None]  # (B, 1, N, N)
        pred = self.decoder(full, num_masked, attn_mask)  # (B, N_masked, target_dim)
        return pred if own is None else (pred, own)
