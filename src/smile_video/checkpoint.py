"""Model checkpoints: our portable format, and loading every supported format.

Our format is a directory: ``model.safetensors`` (weights) + ``config.json``
(``{"format": "smile-video", "version": 1, "kind": ..., "model": ModelConfig fields, "meta": {...}}``), both
written atomically. Training state for resuming lives beside it (``smile_video.engine.checkpoints``).

``load_model`` also reads the official SMILE / VideoMAE ``.pth`` files (pretraining or finetuned layout, weights
under ``model`` or ``module``, an ``argparse.Namespace`` under ``args``), bare ``.safetensors`` files, and Hugging
Face VideoMAE directories. Pickles are opened with ``weights_only=True`` and only ``argparse.Namespace`` allowed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import io
import json
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .checkpoint_layout import CHECKPOINTS, step_dirs
from .config import ModelConfig
from .manifest import MANIFEST, CorruptCheckpoint, check_intact, newest_intact, write_manifest
from .models.classifier import VideoClassifier
from .models.convert import (
    StateDict,
    detect_layout,
    drop_fixed_pos_embed,
    hf_config_to_model_config,
    hf_to_ours,
    infer_config,
    model_config_to_hf,
    ours_to_hf,
    pretrain_to_encoder,
    unwrap_checkpoint,
)
from .models.pretrain import PretrainModel
from .models.vit import VideoViTEncoder
from .runlog import atomic_write_bytes, atomic_write_text

__all__ = ["LoadReport", "safe_torch_load", "save_model", "load_model", "load_encoder", "init_classifier",
           "save_hf", "hf_bias_style", "load_state", "read_config", "KINDS"]

FORMAT, VERSION = "smile-video", 1
KINDS = ("pretrain", "encoder", "classifier")
_RUNTIME_FIELDS = ("drop_path", "grad_checkpointing")  # taken from a caller's cfg even when the file has a config


@dataclass
class LoadReport:
    """What did not line up when loading weights into a model."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (key, file shape, model shape)
    source: str = ""
    layout: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        parts = [f"{self.source} ({self.layout} layout):"]
        if self.missing:
            parts.append(f"missing keys {self.missing}")
        if self.unexpected:
            parts.append(f"unexpected keys {self.unexpected}")
        for key, theirs, ours in self.mismatched:
            parts.append(f"shape mismatch {key}: file {theirs} vs model {ours}")
        return " ".join(parts) if len(parts) > 1 else parts[0] + " all keys matched"


def safe_torch_load(path: str | Path) -> dict:
    """``torch.load`` that cannot run code: ``weights_only=True`` with only ``argparse.Namespace`` allowed."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError) as e:
            raise ValueError(f"{path}: refusing to unpickle it (only tensors, plain containers and "
                             f"argparse.Namespace are allowed): {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj


def load_state(model: nn.Module, sd: StateDict, source: str = "", layout: str = "") -> LoadReport:
    """Load the keys of `sd` whose shapes fit; report missing, unexpected and mismatched keys exactly."""
    own = model.state_dict()
    mismatched = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in sd.items()
                  if k in own and v.shape != own[k].shape]
    bad = {k for k, _, _ in mismatched}
    result = model.load_state_dict({k: v for k, v in sd.items() if k in own and k not in bad}, strict=False)
    return LoadReport(missing=sorted(set(result.missing_keys) - bad), unexpected=sorted(k for k in sd if k not in own),
                      mismatched=mismatched, source=source, layout=layout)


def _unwrap_module(model: nn.Module) -> nn.Module:
    while isinstance(getattr(model, "module", None), nn.Module) or isinstance(getattr(model, "_orig_mod", None),
                                                                              nn.Module):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def _describe(model: nn.Module) -> tuple[str, dict[str, Any]]:
    if isinstance(model, PretrainModel):
        head = {"visible_head": True} if model.visible_head is not None else {}  # absent: older files read the same
        return "pretrain", {"target_dim": model.target_dim, **head}
    if isinstance(model, VideoClassifier):
        return "classifier", {"num_classes": model.num_classes}
    if isinstance(model, VideoViTEncoder):
        return "encoder", {"use_mean_pooling": model.use_mean_pooling}
    raise TypeError(f"cannot save a {type(model).__name__}: expected PretrainModel, VideoClassifier or VideoViTEncoder")


def save_model(model: nn.Module, cfg: ModelConfig, out_dir: str | Path, meta: dict | None = None) -> None:
    """Write ``out_dir/model.safetensors`` and ``out_dir/config.json`` (model config, kind and `meta`), atomically,
    then ``manifest.json`` (their sizes and sha256: `load_model` refuses a damaged file)."""
    model = _unwrap_module(model)
    kind, build = _describe(model)
    out = Path(out_dir)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    (out / MANIFEST).unlink(missing_ok=True)  # an earlier save's, which would refuse the new files if we stop early
    atomic_write_bytes(out / "model.safetensors", safetensors_bytes(weights, metadata={"format": "pt"}))
    doc = {"format": FORMAT, "version": VERSION, "kind": kind, "model": dataclasses.asdict(cfg),
           "meta": {**(meta or {}), **build}}
    atomic_write_text(out / "config.json", json.dumps(doc, indent=2, sort_keys=False) + "\n")
    write_manifest(out, ["model.safetensors", "config.json"])  # last: a damaged file is found on load


def _build(kind: str, cfg: ModelConfig, meta: dict[str, Any]) -> nn.Module:
    if kind == "pretrain":
        return PretrainModel(cfg, int(meta["target_dim"]), visible_head=bool(meta.get("visible_head", False)))
    if kind == "classifier":
        return VideoClassifier(cfg, int(meta.get("num_classes", 0)))
    if kind == "encoder":
        return VideoViTEncoder(cfg, use_mean_pooling=bool(meta.get("use_mean_pooling", False)))
    raise ValueError(f"unknown model kind {kind!r}; expected one of {list(KINDS)}")


def _model_config(fields: dict[str, Any], source: str) -> ModelConfig:
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{source}: unknown model config keys {unknown} (valid: {sorted(known)})")
    cfg = ModelConfig(**fields)
    cfg.validate()
    return cfg


def _resolve_path(path: Path) -> Path:
    """A run directory resolves to its newest complete checkpoint directory that is not damaged (manifest.json)."""
    if path.is_dir() and not (path / "config.json").exists():
        steps = [p for _, p in step_dirs(path / CHECKPOINTS) if (p / "config.json").exists()]
        if steps:
            found = newest_intact(steps, str(path))
            if found is None:
                raise CorruptCheckpoint(f"{path}: every checkpoint under checkpoints/ is damaged (manifest.json)")
            return found
        raise FileNotFoundError(f"{path}: no config.json here and no checkpoints/step_* directory under it")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def _read(path: str | Path, cfg: ModelConfig | None) -> tuple[StateDict, ModelConfig, str, dict[str, Any], str]:
    """Any supported checkpoint -> (state dict in our layout, config, kind guess, meta, layout name)."""
    p = _resolve_path(Path(path))
    if p.is_dir():
        doc = json.loads((p / "config.json").read_text())
        if doc.get("format") == FORMAT:
            if not (p / "model.safetensors").exists():
                raise FileNotFoundError(f"{p}: config.json present but model.safetensors missing")
            check_intact(p)
            model_cfg = _model_config(doc["model"], str(p / "config.json"))
            if cfg is not None:
                for name in _RUNTIME_FIELDS:
                    setattr(model_cfg, name, getattr(cfg, name))
            return load_file(str(p / "model.safetensors")), model_cfg, doc["kind"], doc.get("meta", {}), FORMAT
        if doc.get("model_type") == "videomae":
            weights = p / "model.safetensors"
            raw = load_file(str(weights)) if weights.exists() else unwrap_checkpoint(
                safe_torch_load(p / "pytorch_model.bin"), str(p))
            model_cfg, mean_pool = hf_config_to_model_config(doc)
            if cfg is not None:
                for name in _RUNTIME_FIELDS:
                    setattr(model_cfg, name, getattr(cfg, name))
            sd = hf_to_ours(raw)
            kind, meta = _guess_kind(sd)
            meta.setdefault("use_mean_pooling", mean_pool)
            return sd, model_cfg, kind, meta, "hf"
        raise ValueError(f"{p / 'config.json'}: neither a smile-video checkpoint (format={FORMAT!r}) nor a Hugging "
                         "Face VideoMAE one (model_type='videomae')")
    raw = load_file(str(p)) if p.suffix == ".safetensors" else unwrap_checkpoint(safe_torch_load(p), str(p))
    layout = detect_layout(raw)
    sd = drop_fixed_pos_embed(hf_to_ours(raw) if layout == "hf" else raw)
    kind, meta = _guess_kind(sd)
    return sd, infer_config(sd, base=cfg), kind, meta, layout


def read_config(path: str | Path, cfg: ModelConfig | None = None) -> ModelConfig:
    """The model config a checkpoint holds or implies (inferred from shapes for official files)."""
    return _read(path, cfg)[1]


def _guess_kind(sd: StateDict) -> tuple[str, dict[str, Any]]:
    if "encoder.patch_embed.proj.weight" in sd:
        if "decoder.head.weight" in sd:
            return "pretrain", {"target_dim": sd["decoder.head.weight"].shape[0]}
        return "encoder", {"use_mean_pooling": False, "from_pretrain": True}
    if "head.weight" in sd or "fc_norm.weight" in sd:
        return "classifier", {"num_classes": sd["head.weight"].shape[0] if "head.weight" in sd else 0}
    return "encoder", {"use_mean_pooling": "norm.weight" not in sd}


def load_model(path: str | Path, kind: str = "auto", cfg: ModelConfig | None = None,
               strict: bool = True) -> tuple[nn.Module, ModelConfig, LoadReport]:
    """Load a model from any supported format (see the module docstring).

    kind: ``auto`` (what the file holds), or ``pretrain`` / ``encoder`` / ``classifier`` to insist; ``encoder``
    from a pretraining checkpoint keeps the encoder (with its ``norm``) and drops the decoder, from a classifier
    drops ``fc_norm`` and ``head``. `cfg` supplies what an official ``.pth`` cannot tell (heads, input size,
    frames) and the runtime fields (drop path, activation checkpointing) for every format.
    With `strict`, any missing, unexpected or mis-shaped key raises ValueError naming them.
    """
    sd, model_cfg, found, meta, layout = _read(path, cfg)
    if kind not in ("auto", *KINDS):
        raise ValueError(f"kind must be one of {['auto', *KINDS]}, got {kind!r}")
    want = found if kind == "auto" else kind
    from_pretrain = meta.pop("from_pretrain", False)  # an encoder-only file in the pretraining layout
    if want == found:
        if from_pretrain:
            sd = pretrain_to_encoder(sd)
    elif want == "encoder" and found == "pretrain":
        sd, meta = pretrain_to_encoder(sd), {"use_mean_pooling": False}
    elif want == "encoder" and found == "classifier":
        sd = {k: v for k, v in sd.items() if not k.startswith(("fc_norm.", "head."))}
        meta = {"use_mean_pooling": True}
    elif want != found:
        hint = " (use smile_video.checkpoint.init_classifier to start finetuning)" if want == "classifier" else ""
        raise ValueError(f"{path}: holds a {found} model, cannot load it as {want}{hint}")
    model = _build(want, model_cfg, meta)
    report = load_state(model, sd, source=str(path), layout=layout)
    if strict and not report.ok:
        raise ValueError(str(report))
    return model, model_cfg, report


def load_encoder(path: str | Path, cfg: ModelConfig | None = None) -> tuple[VideoViTEncoder, ModelConfig]:
    """The encoder of any checkpoint, for feature extraction (probe / kNN / extract / similarity).

    A classifier comes back whole (a ``VideoClassifier``: pooled features are mean + ``fc_norm``); a pretraining
    checkpoint gives its encoder (with ``norm``). Use ``smile_video.models.encode`` for pooled / per-token features.
    """
    model, model_cfg, _ = load_model(path, cfg=cfg)
    if isinstance(model, PretrainModel):
        model = model.encoder
    assert isinstance(model, VideoViTEncoder)
    return model, model_cfg


def init_classifier(path: str | Path, num_classes: int, cfg: ModelConfig | None = None,
                    head_dropout: float = 0.0) -> tuple[VideoClassifier, ModelConfig, LoadReport]:
    """A ``VideoClassifier`` initialised from any checkpoint's encoder, for finetuning or probing.

    As VideoMAE does, the encoder's final ``norm`` is dropped (``fc_norm`` after pooling replaces it), and so is a
    ``head`` of the wrong size. Exactly ``fc_norm.*`` and ``head.*`` may come back missing; anything else raises.
    """
    sd, model_cfg, found, _, layout = _read(path, cfg)
    if found == "pretrain" or "encoder.patch_embed.proj.weight" in sd:
        sd = pretrain_to_encoder(sd)
    sd = {k: v for k, v in sd.items() if not k.startswith("norm.")}
    if "head.weight" in sd and sd["head.weight"].shape[0] != num_classes:
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    model = VideoClassifier(model_cfg, num_classes, head_dropout=head_dropout)
    report = load_state(model, sd, source=str(path), layout=layout)
    allowed = {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    if report.unexpected or report.mismatched or set(report.missing) - allowed:
        raise ValueError(str(report))
    return model, model_cfg, report


@functools.lru_cache(maxsize=1)
def hf_bias_style() -> str:
    """How the installed transformers serialises VideoMAE's q/v biases: ``"hub"`` (``q_bias`` / ``v_bias``, also
    when transformers is not installed) or ``"linear"`` (``query.bias`` / ``key.bias`` / ``value.bias``).

    Found by saving a one-layer model and reading the names back: what a version writes is what it reads.
    """
    try:
        import transformers
    except ImportError:
        return "hub"
    tiny = transformers.VideoMAEConfig(image_size=16, patch_size=16, num_frames=2, tubelet_size=2, hidden_size=8,
                                       num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stderr(io.StringIO()):
        transformers.VideoMAEModel(tiny).save_pretrained(d)
        names = list(load_file(str(Path(d) / "model.safetensors")))
    return "hub" if any(k.endswith("attention.attention.q_bias") for k in names) else "linear"


def save_hf(model: nn.Module, cfg: ModelConfig, out_dir: str | Path, labels: list[str] | None = None,
            bias_style: str = "auto") -> str:
    """Write a transformers VideoMAE directory (config.json + model.safetensors); returns the architecture name.

    A classifier becomes ``VideoMAEForVideoClassification`` (mean pooling, ``fc_norm``, ``classifier``); a
    pretraining model or a bare encoder becomes ``VideoMAEModel`` (the decoder is not exported).
    bias_style: ``auto`` (what the installed transformers reads, see `hf_bias_style`), ``hub`` or ``linear``.
    """
    model = _unwrap_module(model)
    if cfg.pos_embed != "flat":
        raise ValueError(f"cannot export model.pos_embed={cfg.pos_embed!r} to Hugging Face: VideoMAE computes the flat "
                         "1-D sinusoid table itself, and this model was trained with other positions")
    if isinstance(model, PretrainModel):
        model = model.encoder
    if isinstance(model, VideoClassifier):
        if model.num_classes == 0:
            raise ValueError("a classifier without a head cannot be exported: VideoMAEModel has no fc_norm; "
                             "export the encoder of the pretraining checkpoint instead")
        arch, prefix, mean_pool = "VideoMAEForVideoClassification", "videomae.", True
        labels = labels or [f"LABEL_{i}" for i in range(model.num_classes)]
        if len(labels) != model.num_classes:
            raise ValueError(f"{len(labels)} labels given for a {model.num_classes}-class head")
    elif isinstance(model, VideoViTEncoder):
        arch, prefix, mean_pool, labels = "VideoMAEModel", "", model.use_mean_pooling, None
    else:
        raise TypeError(f"cannot export a {type(model).__name__} to Hugging Face")
    style = hf_bias_style() if bias_style == "auto" else bias_style
    sd = ours_to_hf({k: v.detach().cpu() for k, v in model.state_dict().items()}, prefix=prefix, bias_style=style)
    out = Path(out_dir)
    (out / MANIFEST).unlink(missing_ok=True)  # a smile model's manifest there would call the export damaged
    atomic_write_bytes(out / "model.safetensors", safetensors_bytes(sd, metadata={"format": "pt"}))
    hf_cfg = model_config_to_hf(cfg, arch, mean_pool, labels)
    atomic_write_text(out / "config.json", json.dumps(hf_cfg, indent=2) + "\n")
    return arch
