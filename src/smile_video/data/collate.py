"""Batching of dataset items (every clip source yields the same item dict)."""

from __future__ import annotations

import torch


def collate(items: list[dict]) -> dict:
    """Stack items: ``"video"`` ``(B * S, 3, T, H, W)`` with each item's S clips adjacent, ``"label"`` and
    ``"index"`` int64 ``(B * S,)`` (repeated per clip), ``"skipped"`` all items' skipped files."""
    videos = [it["video"] if it["video"].dim() == 5 else it["video"].unsqueeze(0) for it in items]
    counts = torch.tensor([v.shape[0] for v in videos])
    return {
        "video": torch.cat(videos),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long).repeat_interleave(counts),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long).repeat_interleave(counts),
        "skipped": [s for it in items for s in it["skipped"]],
    }
