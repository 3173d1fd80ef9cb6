"""Encoder + mean pooling + ``fc_norm`` + linear head, for linear probing and full finetuning.

State-dict keys equal the official VideoMAE / SMILE finetuned layout: ``patch_embed.*``, ``blocks.*``, ``fc_norm.*``,
``head.*`` (no final ``norm``: with mean pooling it is replaced by ``fc_norm`` after pooling).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..config import ModelConfig
from .vit import LN_EPS, VideoViTEncoder, truncated_normal_

__all__ = ["VideoClassifier", "encode"]


class VideoClassifier(VideoViTEncoder):
    """A mean-pooling encoder with ``fc_norm`` and a linear ``head`` (``num_classes=0``: no head, features only)."""

    def __init__(self, cfg: ModelConfig, num_classes: int, head_dropout: float = 0.0,
                 init_scale: float = 0.001) -> None:
        super().__init__(cfg, use_mean_pooling=True)
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        self.fc_norm = nn.LayerNorm(cfg.embed_dim, eps=LN_EPS)
        self.head_dropout = nn.Dropout(head_dropout)
        self.head: nn.Module = nn.Linear(cfg.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        if isinstance(self.head, nn.Linear):  # VideoMAE finetuning: small truncated-normal head, scaled down
            truncated_normal_(self.head.weight, std=0.02)
            self.head.weight.data.mul_(init_scale)
            nn.init.zeros_(self.head.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, 3, T, H, W) -> pooled features (B, C): mean over all tokens, then ``fc_norm``."""
        return self.fc_norm(self.forward_tokens(x).mean(dim=1))  # (B, C)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # type: ignore[override]
        """(B, 3, T, H, W) -> logits (B, num_classes)."""
        if mask is not None:
            raise ValueError("VideoClassifier takes no mask: it classifies from all tokens")
        return self.head(self.head_dropout(self.forward_features(x)))  # (B, num_classes)


def encode(model: VideoViTEncoder, x: Tensor, per_token: bool = False) -> tuple[Tensor, Tensor | None]:
    """Features of a clip for probing / kNN / extraction, from either kind of encoder.

    x: (B, 3, T, H, W) normalised -> (pooled (B, C), tokens (B, N, C) or None). A ``VideoClassifier`` pools as it
    was trained (mean, then ``fc_norm``); a pretraining encoder averages its normed tokens.
    """
    tokens = model.forward_tokens(x)  # (B, N, C)
    pooled = model.fc_norm(tokens.mean(dim=1)) if isinstance(model, VideoClassifier) else tokens.mean(dim=1)
    return pooled, (tokens if per_token else None)
