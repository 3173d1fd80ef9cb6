"""The `smile probe` / `smile knn` job: frozen encoder -> cached train/val features -> linear heads or kNN.

Writes into the run directory: `config.yaml`, `metrics.jsonl` (one record per probe epoch), `results.json`
(per-lr and best metrics, or kNN metrics), and `similarity.png` / `similarity.json` (the encoder's frame-feature
similarity on the val list, paper Fig. 4).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ..config import ProbeJob
from ..devices import resolve_device
from ..runlog import RunDir, atomic_write_text
from .features import FeatureSet, list_features, load_frozen_encoder
from .knn import knn_evaluate
from .linear_probe import train_linear_probe
from .similarity import save_similarity

__all__ = ["probe_features", "run_probe", "run_knn"]


def probe_features(cfg: ProbeJob, checkpoint: str | None, run: RunDir) -> tuple[FeatureSet, FeatureSet, str]:
    """Train and val features of the encoder (a checkpoint, or a random init when `checkpoint` is None), from the
    cache when it matches. Returns (train, val, encoder identity)."""
    p = cfg.probe
    device = resolve_device(p.device)
    encoder, model_cfg, identity = load_frozen_encoder(checkpoint, cfg.model, seed=p.seed)
    cfg.model = model_cfg  # the config the checkpoint describes is the one written beside the results
    dtype = torch.bfloat16 if device.type == "cuda" else None
    cache = p.cache_dir or str(run.file("features"))

    def progress(it: Iterable[Any], n: int) -> Iterable[Any]:
        return run.progress(it, total=n, desc="features")

    sets = []
    for split, path, flip in (("train", p.train_list, p.flip), ("val", p.val_list, False)):
        fs, reused = list_features(encoder, identity, model_cfg, path, p.data_root, p.sampling_rate, cache, split,
                                   flip_view=flip, test_views=(p.test_clips, p.test_crops),
                                   batch_size=p.extract_batch_size, num_workers=p.num_workers, device=device,
                                   dtype=dtype, progress=progress, pooling=p.pooling)
        run.echo(f"{split}: {fs.feats.shape[0]} videos, feature dim {fs.feats.shape[-1]}"
                 f"{' (cached)' if reused else ''}{f', {fs.skipped} skipped' if fs.skipped else ''}")
        sets.append(fs)
    return sets[0], sets[1], identity


def _num_classes(train: FeatureSet, val: FeatureSet) -> int:
    if (train.labels < 0).any() or (val.labels < 0).any():
        raise ValueError("probing needs labelled lists: some entries have no label (-1)")
    return int(max(train.labels.max(), val.labels.max())) + 1


def _finish(run: RunDir, val: FeatureSet, name: str, results: dict[str, Any]) -> None:
    save_similarity({name: val.similarity}, run.file("similarity.png"), run.file("similarity.json"),
                    title="Frame-feature similarity on the val list")
    atomic_write_text(run.file("results.json"), json.dumps(results, indent=1))


def run_probe(cfg: ProbeJob, checkpoint: str | None) -> dict[str, Any]:
    """Linear probing with every lr of `cfg.probe.lrs` trained together. Returns results.json's content."""
    run = RunDir(cfg.run.out_dir, quiet=cfg.run.quiet)
    run.save_config(cfg)
    train, val, identity = probe_features(cfg, checkpoint, run)
    run.save_config(cfg)  # again: the model section may now come from the checkpoint
    k = _num_classes(train, val)
    g = torch.Generator().manual_seed(cfg.probe.seed)
    bar = run.progress(total=cfg.probe.epochs, desc="probe")

    def log(record: dict[str, Any]) -> None:
        run.log({"kind": "probe", **record})
        bar.update(1)

    result = train_linear_probe(train.feats, train.labels, val.feats, val.labels, cfg.probe, g, num_classes=k,
                                device=resolve_device(cfg.probe.device), log=log)
    bar.close()
    results = {"encoder": checkpoint or "random init", "identity": identity, "num_classes": k,
               "num_train": int(train.feats.shape[0]), "num_val": int(val.feats.shape[0]), **result.to_dict()}
    for lr, m in zip(result.lrs, result.metrics):
        run.echo(f"base lr {lr:g}: top-1 {m['top1']:.2f}  top-5 {m['top5']:.2f}  mean-class {m['mean_class']:.2f}")
    run.echo(f"best: base lr {result.best_lr:g}, top-1 {result.best['top1']:.2f}")
    _finish(run, val, Path(checkpoint).name if checkpoint else "random init", results)
    return results


def run_knn(cfg: ProbeJob, checkpoint: str | None) -> dict[str, Any]:
    """kNN (cosine, k = cfg.probe.knn_k) on the same cached features. Returns results.json's content."""
    run = RunDir(cfg.run.out_dir, quiet=cfg.run.quiet)
    run.save_config(cfg)
    train, val, identity = probe_features(cfg, checkpoint, run)
    run.save_config(cfg)
    k = _num_classes(train, val)
    p = cfg.probe
    metrics = knn_evaluate(train.feats[:, 0], train.labels, val.feats, val.labels, ks=[p.knn_k], num_classes=k,
                           vote=p.knn_vote, temperature=p.knn_temperature)[p.knn_k]
    run.log({"kind": "knn", "k": p.knn_k, **metrics})
    run.echo(f"kNN k={p.knn_k} ({p.knn_vote}): top-1 {metrics['top1']:.2f}  top-5 {metrics['top5']:.2f}  "
             f"mean-class {metrics['mean_class']:.2f}")
    results = {"encoder": checkpoint or "random init", "identity": identity, "num_classes": k, "k": p.knn_k,
               "vote": p.knn_vote, "temperature": p.knn_temperature, **metrics}
    _finish(run, val, Path(checkpoint).name if checkpoint else "random init", results)
    return results
