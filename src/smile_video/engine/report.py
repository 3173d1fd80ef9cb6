"""Figures written at the end of a run."""

from __future__ import annotations

from pathlib import Path

from ..runlog import read_metrics


def plot_loss_curve(metrics: str | Path, out: str | Path) -> Path | None:
    """Loss against step from a metrics.jsonl, as a PNG (stage switches marked). None when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not Path(metrics).is_file():
        return None
    records = list(read_metrics(metrics))
    points = [(r["step"], r["loss"]) for r in records if "loss" in r and r.get("loss") is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot([p[0] for p in points], [p[1] for p in points], lw=1.2)
    for r in records:
        if r.get("event") == "stage_start" and r.get("step", 0) > 0:
            ax.axvline(r["step"], color="gray", ls="--", lw=0.8)
            ax.text(r["step"], ax.get_ylim()[1], f" {r['stage']}", va="top", fontsize=8, color="gray")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (MSE on masked tokens)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)
