"""Keys that a job's choices do not read: setting one is a config error that names the keys that apply instead.

A key counts as set when its value differs from the job's default, so a config printed by ``--print-config`` (every
key, the unused ones at their defaults) reads back without error.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .checks import ConfigError

__all__ = ["check_unused"]


def _changed(section: Any, default: Any, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if getattr(section, n) != getattr(default, n)]


def _refuse(prefix: str, section: Any, default: Any, names: tuple[str, ...], why: str) -> None:
    bad = _changed(section, default, names)
    if bad:
        shown = ", ".join(f"{prefix}.{n}={getattr(section, n)!r}" for n in bad)
        raise ConfigError(f"{shown}: not used {why}")


def _pretrain(cfg: Any, d: Any) -> None:
    t, data, mask, teacher = cfg.train, cfg.data, cfg.mask, cfg.teacher
    if t.strategy == "progressive":
        _refuse("train", t, d.train, ("epochs",),
                "by train.strategy=progressive, whose length is train.stage1_epochs + train.stage2_epochs; set "
                "those, or choose train.strategy=single or mixed")
    else:
        _refuse("train", t, d.train, ("stage1_epochs", "stage2_epochs", "restart_schedule"),
                f"by train.strategy={t.strategy} (progressive only); its length is train.epochs")
    if not t.compile:
        _refuse("train", t, d.train, ("compile_mode",), "with train.compile=false (set train.compile=true)")
    if data.source == "video":
        _refuse("data", data, d.data, ("epoch_size", "background"),
                "by data.source=video (an epoch is one pass over data.train_list; backgrounds are for "
                "data.source=synthetic)")
    elif data.background not in ("frame", "video"):
        _refuse("data", data, d.data, ("train_list", "data_root", "label_map"),
                f"by data.source=synthetic with data.background={data.background} (natural clips are read for "
                "data.source=video or data.background=frame|video)")
    if data.source == "video" or data.background != "image":
        _refuse("data", data, d.data, ("image_dir",),
                "unless data.source=synthetic and data.background=image (the folder of still backgrounds)")
    if data.start_sampling != "keyframe":
        _refuse("data", data, d.data, ("keyframe_window",),
                f"by data.start_sampling={data.start_sampling} (keyframe-aligned starts only)")
    if data.num_samples == 1:
        _refuse("data", data, d.data, ("per_sample_start",),
                "with data.num_samples=1 (it says where the 2nd and later samples of a video start)")
    if mask.kind != "trajectory":
        _refuse("mask", mask, d.mask, ("coverage_threshold", "variant"),
                f"by mask.kind={mask.kind} (trajectory masking only)")
    if teacher.kind in ("embedded", "pixel"):
        _refuse("teacher", teacher, d.teacher, ("weights", "arch"),
                f"by teacher.kind={teacher.kind} (it needs no weights file)")
    if teacher.kind != "clip":
        _refuse("teacher", teacher, d.teacher, ("projection", "clip_act"),
                f"by teacher.kind={teacher.kind} (CLIP teachers only)")
    elif teacher.arch != d.teacher.arch:
        _refuse("teacher", teacher, d.teacher, ("arch",), "by teacher.kind=clip (dino / dinov2 / mae only)")


# What finetuning reads from `train.*` (eval/finetune.py); the recipe itself is `finetune.*`.
FINETUNE_TRAIN_KEYS = ("device", "precision", "clip_grad", "log_every")


def _finetune(cfg: Any, d: Any) -> None:
    others = tuple(f.name for f in dataclasses.fields(cfg.train) if f.name not in FINETUNE_TRAIN_KEYS)
    _refuse("train", cfg.train, d.train, others,
            "by smile finetune, which reads only train.device, train.precision, train.clip_grad and "
            "train.log_every; its recipe is finetune.* (e.g. finetune.lr, finetune.epochs, finetune.seed)")
    _refuse("model", cfg.model, d.model, ("drop_path",), "by smile finetune; set finetune.drop_path")


def _probe(cfg: Any, d: Any) -> None:
    _refuse("run", cfg.run, d.run, ("resume", "force_resume"),
            "by smile probe / knn, which do not resume (their features are cached); redo a run with --overwrite "
            "(run.overwrite=true)")
    from .evaluation import KnnJob

    if isinstance(cfg, KnnJob):
        _refuse("probe", cfg.probe, d.probe, ("head", "attentive_heads"),
                "by smile knn (it votes on the pooled features; probe.pooling sets them)")
    elif cfg.probe.head == "attentive":
        _refuse("probe", cfg.probe, d.probe, ("pooling", "batchnorm"),
                "by probe.head=attentive (it reads every token and normalises them itself)")
    else:
        _refuse("probe", cfg.probe, d.probe, ("attentive_heads",), "by probe.head=linear (attentive only)")
    if cfg.probe.knn_vote != "weighted":
        _refuse("probe", cfg.probe, d.probe, ("knn_temperature",), "by probe.knn_vote=majority (weighted only)")


def check_unused(cfg: Any) -> None:
    """Raise ConfigError when `cfg` sets a key its own choices ignore (see the module docstring)."""
    from .evaluation import FinetuneJob, ProbeJob
    from .sections import PretrainJob

    default = type(cfg)()
    if isinstance(cfg, (PretrainJob, FinetuneJob)) and not cfg.run.resume:
        _refuse("run", cfg.run, default.run, ("force_resume",), "without run.resume (it forces a resume)")
    if isinstance(cfg, PretrainJob):
        _pretrain(cfg, default)
    elif isinstance(cfg, FinetuneJob):
        _finetune(cfg, default)
    elif isinstance(cfg, ProbeJob):
        _probe(cfg, default)
