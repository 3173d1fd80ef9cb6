"""Frame-feature similarity (paper Fig. 4 and Fig. 6): how alike an encoder's features are across the time steps of
a clip. Lower off-diagonal similarity means the features change more over time ("better temporal awareness").

The feature of time step t' is the mean over the h' x w' spatial tokens of tubelet t' (token order (t', h', w'),
docs/design.md); the map is the (T', T') cosine similarity between time steps, averaged over clips.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..runlog import atomic_write_bytes, atomic_write_text

__all__ = ["time_step_features", "frame_similarity", "save_similarity", "similarity_figure", "off_diagonal_mean"]


def time_step_features(tokens: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """tokens (B, N, C) in (t', h', w') order -> (B, T', C): the mean of each time step's spatial tokens."""
    t, h, w = grid
    b, n, c = tokens.shape
    if n != t * h * w:
        raise ValueError(f"tokens have N={n}, but the grid {grid} has {t * h * w} tokens")
    return tokens.reshape(b, t, h * w, c).mean(dim=2)  # (B, T', C)


def frame_similarity(tokens: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """tokens (B, N, C) -> (B, T', T') cosine similarity between the time steps of each clip (1 on the diagonal)."""
    f = F.normalize(time_step_features(tokens.float(), grid), dim=-1)  # (B, T', C)
    return f @ f.transpose(1, 2)  # (B, T', T')


def off_diagonal_mean(sim: Tensor) -> float:
    """Mean of a (T', T') map off its diagonal: one number per encoder (lower = more temporal variation)."""
    t = sim.shape[-1]
    if t < 2:
        return float("nan")
    mask = ~torch.eye(t, dtype=torch.bool, device=sim.device)
    return sim[mask].mean().item()


def save_similarity(maps: dict[str, Tensor], png_path: str | Path, json_path: str | Path | None = None,
                    title: str = "Feature similarity across time steps") -> None:
    """Write the (T', T') maps of one or more encoders side by side as a PNG heat map, and the numbers as JSON.

    maps: {name: (T', T') tensor}, e.g. {"random init": ..., "SMILE": ...}; all share one colour scale.
    """
    if not maps:
        raise ValueError("save_similarity needs at least one map")
    import io

    import matplotlib.pyplot as plt

    arrays = {name: m.detach().float().cpu() for name, m in maps.items()}
    fig = similarity_figure(arrays, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(png_path, buf.getvalue())
    if json_path is not None:
        record = {name: {"matrix": m.tolist(), "off_diagonal_mean": off_diagonal_mean(m)} for name, m in
                  arrays.items()}
        atomic_write_text(json_path, json.dumps(record, indent=1))


def similarity_figure(arrays: dict[str, Tensor], title: str):
    """The heat maps side by side, one colour scale, a title above the per-map titles (constrained layout: the
    title never overlaps them). Returns the matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, m in arrays.items():
        if m.dim() != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(f"similarity map {name!r} must be (T', T'), got {tuple(m.shape)}")
    low = min(float(m.min()) for m in arrays.values())
    fig, axes = plt.subplots(1, len(arrays), figsize=(3.6 * len(arrays) + 0.8, 3.6), squeeze=False,
                             layout="constrained")
    image = None
    for ax, (name, m) in zip(axes[0], arrays.items()):
        image = ax.imshow(m.numpy(), vmin=min(low, 0.0), vmax=1.0, cmap="viridis")
        ax.set_title(f"{name}\noff-diag mean {off_diagonal_mean(m):.3f}", fontsize=9)
        ax.set_xlabel("time step t'")
        ax.set_ylabel("time step t'")
        ticks = list(range(m.shape[0]))
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return fig
