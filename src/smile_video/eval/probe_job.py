"""The `smile probe` / `smile knn` job: frozen encoder -> cached train/val(/test) features (or tokens) -> linear or
attentive heads, or kNN.

With `probe.test_list` set, the probe chooses its (lr, epoch) on val and reports the test metrics at that point, and
kNN reports on test (val too); without it the result is the best of val (see `linear_probe`'s protocol).

Writes into the run directory: `config.yaml`, `metrics.jsonl` (one record per probe epoch), `results.json`
(protocol, per-lr, selected and reported metrics, or kNN metrics), and `similarity.png` / `similarity.json` (the
encoder's frame-feature similarity on the val list, paper Fig. 4).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ..config import ProbeConfig, ProbeJob
from ..config.evaluation import check_list_files
from ..devices import resolve_device
from ..run_guard import claim_run_dir, releases_run_dir
from ..runlog import RunDir, atomic_write_text
from ..seeding import derive_seed
from .attentive_probe import train_attentive_probe
from .features import FeatureSet, list_features, load_frozen_encoder
from .knn import knn_evaluate
from .linear_probe import ProbeResult, train_linear_probe
from .similarity import save_similarity

__all__ = ["check_lists", "probe_features", "repeat_seed", "probe_repeats", "mean_of_repeats", "run_probe",
           "run_knn", "KNN_PROTOCOL_VAL", "KNN_PROTOCOL_TEST"]

KNN_PROTOCOL_VAL = "kNN on val (no test list)"
KNN_PROTOCOL_TEST = "kNN on test, train features as the bank (val also reported)"


def check_lists(p: ProbeConfig) -> None:
    """Fail before any work when the train or val list is unset, a list that is set does not exist, or none of a
    list's files exist (relative paths resolved against the wrong folder); the error names the key."""
    from ..data.lists import read_video_list, require_files

    check_list_files("probe", p)
    for key in ("train_list", "val_list", "test_list"):
        path = getattr(p, key)
        if path:
            require_files(read_video_list(path, p.data_root), path, p.data_root, "probe.data_root")


def probe_features(cfg: ProbeJob, checkpoint: str | None, run: RunDir, pooling: str | None = None
                   ) -> tuple[dict[str, FeatureSet], str]:
    """Train, val and (when probe.test_list is set) test features of the encoder (a checkpoint, or a random init when
    `checkpoint` is None), from the cache when it matches. Returns ({split: features}, encoder identity) and sets
    cfg.model to the config the checkpoint describes. `pooling`: None = probe.pooling; "tokens" = every token."""
    p = cfg.probe
    pooling = pooling or p.pooling
    check_lists(p)
    device = resolve_device(p.device)
    encoder, model_cfg, identity = load_frozen_encoder(checkpoint, cfg.model, seed=p.seed)
    cfg.model = model_cfg  # the config the checkpoint describes is the one written beside the results
    dtype = torch.bfloat16 if device.type == "cuda" else None
    cache = p.cache_dir or str(run.file("features"))

    def progress(it: Iterable[Any], n: int) -> Iterable[Any]:
        return run.progress(it, total=n, desc="features")

    splits = [("train", p.train_list, p.flip), ("val", p.val_list, False)]
    if p.test_list:
        splits.append(("test", p.test_list, False))
    sets = {}
    for split, path, flip in splits:
        fs, reused = list_features(encoder, identity, model_cfg, path, p.data_root, p.sampling_rate, cache, split,
                                   flip_view=flip, test_views=(p.test_clips, p.test_crops),
                                   batch_size=p.extract_batch_size, num_workers=p.num_workers, device=device,
                                   dtype=dtype, progress=progress, pooling=pooling)
        run.echo(f"{split}: {fs.feats.shape[0]} videos, feature dim {fs.feats.shape[-1]}"
                 f"{' (cached)' if reused else ''}{f', {fs.skipped} skipped' if fs.skipped else ''}")
        sets[split] = fs
    return sets, identity


def _num_classes(sets: dict[str, FeatureSet]) -> int:
    if any((fs.labels < 0).any() for fs in sets.values()):
        raise ValueError("probing needs labelled lists: some entries have no label (-1)")
    return max(int(fs.labels.max()) for fs in sets.values()) + 1


def _start(cfg: ProbeJob, checkpoint: str | None, pooling: str | None = None
           ) -> tuple[RunDir, dict[str, FeatureSet], dict[str, Any]]:
    """Run directory, features and the results' common head (encoder, identity, classes, split sizes)."""
    check_lists(cfg.probe)  # before the run directory and the encoder
    # One run per directory; --overwrite keeps the feature cache (checked against the encoder on use).
    claim_run_dir(cfg.run.out_dir, resume=False, overwrite=cfg.run.overwrite, keep=("features",), resume_hint=None)
    run = RunDir(cfg.run.out_dir, quiet=cfg.run.quiet)
    run.echo(f"{checkpoint or 'random init'} on {cfg.probe.train_list} -> {run.path}")  # which encoder, task, run
    run.save_config(cfg)
    sets, identity = probe_features(cfg, checkpoint, run, pooling)
    run.save_config(cfg)  # again: the model section may now come from the checkpoint
    head = {"encoder": checkpoint or "random init", "identity": identity, "num_classes": _num_classes(sets),
            **{f"num_{split}": int(fs.feats.shape[0]) for split, fs in sets.items()}}
    return run, sets, head


def _finish(run: RunDir, val: FeatureSet, name: str, results: dict[str, Any]) -> None:
    save_similarity({name: val.similarity}, run.file("similarity.png"), run.file("similarity.json"),
                    title="Frame-feature similarity on the val list")
    atomic_write_text(run.file("results.json"), json.dumps(results, indent=1))


def _line(m: dict[str, float]) -> str:
    return f"top-1 {m['top1']:.2f}  top-5 {m['top5']:.2f}  mean-class {m['mean_class']:.2f}"


def repeat_seed(seed: int, repeat: int) -> int:
    """The generator seed of probe repeat `repeat`: repeat 0 keeps `seed` (the single probe of repeats=1)."""
    return seed if repeat == 0 else derive_seed(seed, repeat)


def mean_of_repeats(results: list[ProbeResult]) -> dict[str, Any]:
    """What several independent probes on the same features report: for every metric the mean (`best`) and sample
    std (`best_std`, 0 for one) of each probe's reported metrics; with a test set also `selected` = {"val": mean of
    the val metrics at each probe's chosen point, "test": = best, "lr" / "epoch": each probe's choice}."""
    if not results:
        raise ValueError("mean_of_repeats: no probe results")

    from .study import mean_std

    def stats(ms: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
        pairs = {k: mean_std([m[k] for m in ms]) for k in ms[0]}
        return {k: v[0] for k, v in pairs.items()}, {k: v[1] for k, v in pairs.items()}

    best, best_std = stats([r.best for r in results])
    out: dict[str, Any] = {"best": best, "best_std": best_std, "best_lr": [r.best_lr for r in results]}
    if all(r.selected is not None for r in results):
        sel = [r.selected for r in results]
        out["selected"] = {"val": stats([s["val"] for s in sel])[0], "test": best,
                           "lr": [s["lr"] for s in sel], "epoch": [s["epoch"] for s in sel]}
    return out


def probe_repeats(train: Any, val: Any, test: Any | None, p: ProbeConfig, device: torch.device,
                  num_classes: int | None = None,
                  log_for: Callable[[int], Callable[[dict[str, Any]], None]] | None = None) -> list[ProbeResult]:
    """The `p.repeats` independent probes (`p.head`: linear on pooled features, attentive on tokens) of one feature
    set, repeat r drawn from `repeat_seed(p.seed, r)`. train / val / test: objects with `.feats` and `.labels`
    (test may be None: best of val). `log_for(r)`: the per-epoch logger of repeat r."""
    test_x, test_y = (None, None) if test is None else (test.feats, test.labels)
    out = []
    for r in range(p.repeats):
        g = torch.Generator().manual_seed(repeat_seed(p.seed, r))
        log = None if log_for is None else log_for(r)
        if p.head == "attentive":
            out.append(train_attentive_probe(train.feats, train.labels, val.feats, val.labels, p, g,
                                             num_classes=num_classes, device=device, log=log, test_tokens=test_x,
                                             test_labels=test_y, num_heads=p.attentive_heads))
        else:
            out.append(train_linear_probe(train.feats, train.labels, val.feats, val.labels, p, g,
                                          num_classes=num_classes, device=device, log=log, test_feats=test_x,
                                          test_labels=test_y))
    return out


@releases_run_dir  # claim_run_dir (in _start) locks the run directory until this returns
def run_probe(cfg: ProbeJob, checkpoint: str | None) -> dict[str, Any]:
    """Linear (probe.head=linear) or attentive (probe.head=attentive, on every output token) probing with every lr of
    `cfg.probe.lrs` trained together, `cfg.probe.repeats` times on the same features. Returns results.json's
    content: the common head, `head`, `protocol`, `best_lr`, `best` (the number to report), `per_lr` (last epoch)
    and, with a test list, `selected` = {lr, epoch, val, test}; with repeats > 1 `best` and `selected` are the
    repeats' means (`mean_of_repeats`), `best_std` their spread, `best_lr` each probe's lr (a list) and `repeats`
    each probe's own results (its `per_lr` among them: the top level then holds no single probe's numbers)."""
    p = cfg.probe
    attentive = p.head == "attentive"
    run, sets, head = _start(cfg, checkpoint, "tokens" if attentive else None)
    train, val, test = sets["train"], sets["val"], sets.get("test")
    bar = run.progress(total=p.epochs * p.repeats, desc="probe")
    device = resolve_device(p.device)

    def log_for(r: int) -> Callable[[dict[str, Any]], None]:
        def log(record: dict[str, Any]) -> None:
            run.log({"kind": "probe", **({"repeat": r} if p.repeats > 1 else {}), **record})
            bar.update(1)
        return log

    results_list = probe_repeats(train, val, test, p, device, num_classes=head["num_classes"], log_for=log_for)
    bar.close()
    result = results_list[0]
    results = {**head, "head": p.head, **result.to_dict()}
    for lr, m in zip(result.lrs, result.metrics):
        run.echo(f"base lr {lr:g}: val {_line(m)}")
    if result.selected is None:
        run.echo(f"best of val (no test list): base lr {result.best_lr:g}, top-1 {result.best['top1']:.2f}")
    else:
        s = result.selected
        run.echo(f"chosen on val, reported on test: base lr {s['lr']:g}, epoch {s['epoch']} (val top-1 "
                 f"{s['val']['top1']:.2f}): test {_line(s['test'])}")
    if p.repeats > 1:  # the top level is the repeats' means; each probe's own numbers are under "repeats"
        del results["per_lr"]
        results["repeats"] = [x.to_dict() for x in results_list]
        results.update(mean_of_repeats(results_list))
        tops = ", ".join(f"{x.best['top1']:.2f}" for x in results_list)
        run.echo(f"{p.repeats} probes ({tops}): top-1 {results['best']['top1']:.2f} +- "
                 f"{results['best_std']['top1']:.2f} (mean +- std over the probes)")
    _finish(run, val, Path(checkpoint).name if checkpoint else "random init", results)
    return results


@releases_run_dir  # claim_run_dir (in _start) locks the run directory until this returns
def run_knn(cfg: ProbeJob, checkpoint: str | None) -> dict[str, Any]:
    """kNN (cosine, k = cfg.probe.knn_k) on the same cached features. Returns results.json's content: the common
    head, `protocol`, k / vote / temperature and the reported top1 / top5 / mean_class (test with a test list, else
    val); with a test list also `val` and `test`."""
    run, sets, head = _start(cfg, checkpoint)
    p = cfg.probe
    train = sets["train"]
    metrics = {split: knn_evaluate(train.feats[:, 0], train.labels, sets[split].feats, sets[split].labels,
                                   ks=[p.knn_k], num_classes=head["num_classes"], vote=p.knn_vote,
                                   temperature=p.knn_temperature, centre=p.knn_centre)[p.knn_k]
               for split in ("val", "test") if split in sets}
    results = {**head, "protocol": KNN_PROTOCOL_TEST if "test" in metrics else KNN_PROTOCOL_VAL, "k": p.knn_k,
               "vote": p.knn_vote, "temperature": p.knn_temperature, "centre": p.knn_centre}
    for split, m in metrics.items():
        run.log({"kind": "knn", "split": split, "k": p.knn_k, **m})
        run.echo(f"kNN k={p.knn_k} ({p.knn_vote}{', centred' if p.knn_centre else ''}) on {split}: {_line(m)}")
    if "test" in metrics:
        results.update(metrics["test"], val=metrics["val"], test=metrics["test"])
    else:
        results.update(metrics["val"])
    _finish(run, sets["val"], Path(checkpoint).name if checkpoint else "random init", results)
    return results
