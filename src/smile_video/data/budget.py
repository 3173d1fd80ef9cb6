"""The fixed-budget data-scale study (paper appendix E.1, Fig. 5): pretrain on a fraction s of the list for e/s epochs.

The number of iterations n = s x e stays constant: 100% for 200 epochs, 50% for 400, 25% for 800, 12.5% for 1600
(ViT-S on K400 in the paper). `write_budget_study` writes, for each fraction, the subset list (stratified by class,
nested: each smaller subset lies inside the larger ones; `data.subset`) and a YAML overlay for `smile pretrain`:

    smile pretrain -c configs/pretrain/k400_vit_s_budget.yaml -c OUT/pretrain_12.5.yaml

The overlay sets ``data.train_list``, the epochs (``train.epochs``, or for the progressive strategy both stages,
split in the base config's proportion), ``train.warmup_epochs`` scaled the same way (so the warmup is the same
number of iterations at every scale) and ``run.out_dir``. Everything else comes from the base config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .lists import read_video_list
from .subset import subset_indices, write_subset

__all__ = ["PAPER_FRACTIONS", "PAPER_FULL_EPOCHS", "budget_epochs", "budget_overlay", "write_budget_study"]

PAPER_FRACTIONS = (0.125, 0.25, 0.5, 1.0)  # E.1
PAPER_FULL_EPOCHS = 200  # E.1: the whole dataset for 200 epochs


def budget_epochs(fraction: float, full_epochs: int) -> int:
    """Epochs on a `fraction` of the data that make as many iterations as `full_epochs` on all of it (integral)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"a data fraction must be in (0, 1], got {fraction}")
    epochs = full_epochs / fraction
    if abs(epochs - round(epochs)) > 1e-9 or round(epochs) < 1:
        raise ValueError(f"{full_epochs} epochs / fraction {fraction} = {epochs} is not a whole number of epochs")
    return round(epochs)


def _label(fraction: float) -> str:
    return f"{100 * fraction:g}"  # 0.125 -> "12.5"


def budget_overlay(fraction: float, full_epochs: int, train: dict[str, Any], list_path: str,
                   out_dir: str) -> dict[str, Any]:
    """The config overlay of one fraction; `train` is the base config's ``train`` section (may be empty: defaults)."""
    from ..config import TrainConfig

    base = TrainConfig()
    strategy = train.get("strategy", base.strategy)
    epochs = budget_epochs(fraction, full_epochs)
    t: dict[str, Any] = {}
    if strategy == "progressive":
        s1, s2 = train.get("stage1_epochs", base.stage1_epochs), train.get("stage2_epochs", base.stage2_epochs)
        stage1 = round(epochs * s1 / (s1 + s2))
        t.update(stage1_epochs=stage1, stage2_epochs=epochs - stage1)
    else:
        t["epochs"] = epochs
    warmup = float(train.get("warmup_epochs", base.warmup_epochs))
    if warmup:  # the base's warmup belongs to full_epochs on the whole list: the same iterations at every scale
        t["warmup_epochs"] = warmup * epochs / full_epochs
    return {"data": {"train_list": list_path}, "train": t, "run": {"out_dir": out_dir}}


def write_budget_study(list_path: str | Path, out: str | Path, fractions: Sequence[float] = PAPER_FRACTIONS,
                       full_epochs: int = PAPER_FULL_EPOCHS, seed: int = 0, base_config: str | Path | None = None,
                       runs_dir: str = "runs/budget") -> list[dict[str, Any]]:
    """Write ``OUT/train_<pct>.<ext>`` (nested stratified subsets of `list_path`) and ``OUT/pretrain_<pct>.yaml``
    per fraction; returns one summary per fraction (fraction, entries, epochs, list, config).

    `base_config`: the pretraining config the overlays go with (its ``train`` section sets the strategy, the stage
    split and the warmup); without it the `TrainConfig` defaults are assumed.
    """
    if not fractions:
        raise ValueError("no fractions given")
    list_path, out = Path(list_path), Path(out)
    train = {}
    if base_config is not None:
        train = (yaml.safe_load(Path(base_config).read_text()) or {}).get("train", {}) or {}
    entries = read_video_list(list_path)
    labels = [e.label for e in entries]
    ext = list_path.suffix if list_path.is_file() and list_path.suffix else ".csv"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for f in sorted(fractions):
        epochs = budget_epochs(f, full_epochs)
        idx = subset_indices(labels, fraction=f, mode="stratified", seed=seed)
        sub = out / f"train_{_label(f)}{ext}"
        write_subset(list_path, idx, sub, entries)
        overlay = budget_overlay(f, full_epochs, train, str(sub), f"{runs_dir}/scale_{_label(f)}")
        cfg_path = out / f"pretrain_{_label(f)}.yaml"
        header = (f"# Fixed-budget study (Fig. 5): {_label(f)}% of {list_path.name} ({len(idx)} of {len(entries)} "
                  f"entries, seed {seed}) for {epochs} epochs = {full_epochs} epochs of the whole list.\n")
        cfg_path.write_text(header + yaml.safe_dump(overlay, sort_keys=False))
        rows.append({"fraction": f, "entries": len(idx), "epochs": epochs, "list": str(sub), "config": str(cfg_path)})
    return rows
