"""Pure ``dict -> dict`` converters between checkpoint layouts, and config inference from weight shapes.

Layouts (names as in docs/models.md):

- ``pretrain``: official SMILE / VideoMAE pretraining, and our ``PretrainModel``: ``encoder.*``,
  ``encoder_to_decoder.weight``, ``mask_token``, ``decoder.{blocks,norm,head}.*``.
- ``finetune``: official finetuned models, our ``VideoClassifier`` (``patch_embed.*``, ``blocks.*``, ``fc_norm.*``,
  ``head.*``) and our bare ``VideoViTEncoder`` (``patch_embed.*``, ``blocks.*``, ``norm.*``).
- ``hf``: Hugging Face transformers ``VideoMAEModel`` (no prefix), ``VideoMAEForVideoClassification`` and
  ``VideoMAEForPreTraining`` (``videomae.`` prefix).

The only non-trivial mapping is attention: ours (and the official code) keep one bias-free ``qkv`` matrix with separate
``q_bias`` / ``v_bias``; transformers keeps ``query``, ``key`` and ``value`` matrices. Its files store the biases as
``attention.attention.q_bias`` / ``v_bias`` (transformers 4 has such parameters; transformers 5 renames them to
``query.bias`` / ``value.bias`` when loading and back when saving). Some 5.x releases (seen: 5.17) instead read
``query.bias``, ``key.bias`` and ``value.bias`` and do not map the hub names, so the writer takes a `bias_style`;
the reader accepts every spelling.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import torch
from torch import Tensor

from ..config import MODEL_PRESETS, ModelConfig

__all__ = ["StateDict", "unwrap_checkpoint", "detect_layout", "pretrain_to_encoder", "drop_fixed_pos_embed",
           "hf_to_ours", "ours_to_hf", "infer_config", "conventional_heads", "hf_config_to_model_config",
           "model_config_to_hf"]

StateDict = dict[str, Tensor]

_WRAPPERS = ("model", "module", "state_dict", "model_state")  # where training scripts put the weights
_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile

# Inside one transformer block: transformers name -> our (official) name. Order matters: the attention output
# must be matched before the MLP output, whose name it contains.
_HF_BLOCK_SWAPS: tuple[tuple[str, str], ...] = (
    ("layernorm_before.", "norm1."),
    ("layernorm_after.", "norm2."),
    ("attention.output.dense.", "attn.proj."),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
)
_HF_QKV = ("attention.attention.query.", "attention.attention.key.", "attention.attention.value.")


def unwrap_checkpoint(obj: Any, source: str = "checkpoint") -> StateDict:
    """The weights of a loaded checkpoint: the dict under ``model`` / ``module`` / ``state_dict`` (or the object
    itself), with ``module.`` and ``_orig_mod.`` prefixes removed. Non-tensor entries are an error."""
    if isinstance(obj, dict):
        for key in _WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{source}: no state dict found (looked under {list(_WRAPPERS)} and at the top level)")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{source}: expected a dict of tensors, but these entries are not tensors: {bad[:8]}")
    out: StateDict = {}
    for k, v in obj.items():
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p):], True
        out[k] = v
    return out


def detect_layout(sd: StateDict) -> str:
    """``"pretrain"``, ``"finetune"`` or ``"hf"`` (see the module docstring); ValueError when none fits."""
    if "encoder.patch_embed.proj.weight" in sd:
        return "pretrain"
    if "patch_embed.proj.weight" in sd:
        return "finetune"
    if any(k.endswith("embeddings.patch_embeddings.projection.weight") for k in sd):
        return "hf"
    raise ValueError("unrecognised checkpoint layout: no 'encoder.patch_embed.proj.weight' (pretraining), "
                     "'patch_embed.proj.weight' (finetuned) or 'embeddings.patch_embeddings.projection.weight' "
                     f"(Hugging Face) key; first keys: {sorted(sd)[:6]}")


def pretrain_to_encoder(sd: StateDict) -> StateDict:
    """Pretraining layout -> the encoder's own keys (``encoder.`` stripped; decoder keys dropped)."""
    return {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}


def drop_fixed_pos_embed(sd: StateDict) -> StateDict:
    """Drop stored ``pos_embed`` tensors that equal the fixed sinusoid table (some exporters save it).

    A stored table that differs (a learned position embedding) is kept, so loading reports it as unexpected.
    """
    from .vit import sinusoid_table

    out = {}
    for k, v in sd.items():
        if k.split(".")[-1] == "pos_embed" and v.dim() in (2, 3):
            table = sinusoid_table(v.shape[-2], v.shape[-1])
            if torch.allclose(v.reshape(table.shape).float(), table, atol=1e-4):
                continue
        out[k] = v
    return out


def _block_to_ours(rest: str) -> str:
    for theirs, ours in _HF_BLOCK_SWAPS:
        if rest.startswith(theirs):
            return ours + rest[len(theirs):]
    return rest


def _hf_blocks_to_ours(sd: StateDict, src: str, dst: str, out: StateDict) -> None:
    """Move transformers layers ``{src}{i}.*`` to our ``{dst}{i}.*`` in `out` (pops what it uses from `sd`)."""
    indices = sorted({int(m.group(1)) for k in sd if (m := re.match(re.escape(src) + r"(\d+)\.", k))})
    for i in indices:
        p = f"{src}{i}."
        q, k_, v = (sd.pop(p + name + "weight", None) for name in _HF_QKV)
        if q is not None and k_ is not None and v is not None:
            out[f"{dst}{i}.attn.qkv.weight"] = torch.cat([q, k_, v], dim=0)  # (3C, C)
        for ours, names in (("q_bias", ("attention.attention.q_bias", _HF_QKV[0] + "bias")),
                            ("v_bias", ("attention.attention.v_bias", _HF_QKV[2] + "bias"))):
            for name in names:  # the serialised name (both transformers 4 and 5), then transformers 5's in-memory one
                if (t := sd.pop(p + name, None)) is not None:
                    out[f"{dst}{i}.attn.{ours}"] = t
        # A key bias adds q . b_k to every score of a query row: softmax is invariant to it, so dropping it is exact.
        sd.pop(p + _HF_QKV[1] + "bias", None)
        for key in [k for k in sd if k.startswith(p)]:
            out[f"{dst}{i}.{_block_to_ours(key[len(p):])}"] = sd.pop(key)


def hf_to_ours(sd: StateDict) -> StateDict:
    """transformers VideoMAE keys -> ours: pretraining layout for ``VideoMAEForPreTraining`` weights (with a
    decoder), else the finetuned / encoder layout. Keys it does not know are passed through unchanged."""
    sd = dict(sd)
    base = "videomae." if any(k.startswith("videomae.") for k in sd) else ""
    pretrain = "encoder_to_decoder.weight" in sd
    enc = "encoder." if pretrain else ""
    out: StateDict = {}
    for name in ("weight", "bias"):
        if (t := sd.pop(f"{base}embeddings.patch_embeddings.projection.{name}", None)) is not None:
            out[f"{enc}patch_embed.proj.{name}"] = t
        if (t := sd.pop(f"{base}layernorm.{name}", None)) is not None:
            out[f"{enc}norm.{name}"] = t
        if (t := sd.pop(f"classifier.{name}", None)) is not None:
            out[f"head.{name}"] = t
        if (t := sd.pop(f"fc_norm.{name}", None)) is not None:
            out[f"fc_norm.{name}"] = t
    _hf_blocks_to_ours(sd, f"{base}encoder.layer.", f"{enc}blocks.", out)
    if pretrain:
        _hf_blocks_to_ours(sd, "decoder.decoder_layers.", "decoder.blocks.", out)
    out.update(sd)  # encoder_to_decoder, mask_token, decoder.norm / head, and anything unknown
    return out


def ours_to_hf(sd: StateDict, prefix: str = "", bias_style: str = "hub") -> StateDict:
    """Our finetuned / encoder layout -> transformers ``VideoMAEModel`` keys under `prefix` (``"videomae."`` for
    ``VideoMAEForVideoClassification``); ``fc_norm`` stays, ``head`` becomes ``classifier``.

    bias_style: ``"hub"`` writes ``attention.attention.q_bias`` / ``v_bias`` (the hub checkpoints' names, read by
    transformers 4 and by recent 5.x); ``"linear"`` writes ``query.bias``, a zero ``key.bias`` and ``value.bias``
    (what transformers 5 releases without the q_bias mapping, e.g. 5.17, read)."""
    if bias_style not in ("hub", "linear"):
        raise ValueError(f"bias_style must be 'hub' or 'linear', got {bias_style!r}")
    if detect_layout(sd) == "pretrain":
        raise ValueError("ours_to_hf takes the encoder / finetuned layout; apply pretrain_to_encoder first")
    out: StateDict = {}
    for k, v in sd.items():
        if k.startswith("patch_embed.proj."):
            out[f"{prefix}embeddings.patch_embeddings.projection.{k.rsplit('.', 1)[1]}"] = v
        elif k.startswith("norm."):
            out[f"{prefix}layernorm.{k[len('norm.'):]}"] = v
        elif k.startswith("fc_norm."):
            out[k] = v
        elif k.startswith("head."):
            out[f"classifier.{k[len('head.'):]}"] = v
        elif m := re.match(r"blocks\.(\d+)\.(.+)$", k):
            i, rest = m.groups()
            p = f"{prefix}encoder.layer.{i}."
            if rest == "attn.qkv.weight":
                q, k_, v_ = v.chunk(3, dim=0)  # (C, C) each
                out[p + _HF_QKV[0] + "weight"], out[p + _HF_QKV[1] + "weight"] = q, k_
                out[p + _HF_QKV[2] + "weight"] = v_
            elif rest in ("attn.q_bias", "attn.v_bias") and bias_style == "hub":
                out[p + "attention.attention." + rest[len("attn."):]] = v
            elif rest in ("attn.q_bias", "attn.v_bias"):
                name = "query" if rest == "attn.q_bias" else "value"
                out[p + f"attention.attention.{name}.bias"] = v
                if name == "query":
                    out[p + "attention.attention.key.bias"] = torch.zeros_like(v)
            else:
                for theirs, ours in _HF_BLOCK_SWAPS:
                    if rest.startswith(ours):
                        out[p + theirs + rest[len(ours):]] = v
                        break
                else:
                    raise ValueError(f"ours_to_hf: no transformers name for {k!r}")
        else:
            raise ValueError(f"ours_to_hf: no transformers name for {k!r}")
    return {k: v.contiguous() for k, v in out.items()}


def conventional_heads(dim: int) -> int:
    """Attention heads conventionally used at width `dim`: the presets' widths (encoder and decoder), ViT-Ti (192: 3)
    and ViT-H (1280: 16); else 64 channels per head, or 32 or 16 for narrow widths, else one head."""
    table = {192: 3, 1280: 16}
    for p in MODEL_PRESETS.values():
        table[p["embed_dim"]] = p["num_heads"]
        table[p["decoder_dim"]] = p["decoder_num_heads"]
    if dim in table:
        return table[dim]
    for head_dim in (64, 32, 16):
        if dim % head_dim == 0:
            return dim // head_dim
    return 1


def _count_blocks(sd: StateDict, prefix: str) -> int:
    return len({int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))})


def infer_config(sd: StateDict, base: ModelConfig | None = None, num_heads: int | None = None,
                 decoder_num_heads: int | None = None) -> ModelConfig:
    """Architecture of a pretraining- or finetuned-layout state dict, from its shapes.

    embed dim, channels, tubelet and patch from the tubelet conv; depth from the block indices; MLP ratio from fc1;
    decoder width and depth likewise. What shapes cannot tell (heads, input size, frames, drop path) comes from
    `base` (or `num_heads`), else from the conventional head table and the preset of the same width.
    """
    enc = "encoder." if detect_layout(sd) == "pretrain" else ""
    w = sd[f"{enc}patch_embed.proj.weight"]
    if w.dim() != 5 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"{enc}patch_embed.proj.weight: expected a Conv3d kernel (C, in, t, p, p), got "
                         f"{tuple(w.shape)}")
    embed_dim, in_chans, tubelet, patch, _ = w.shape
    fc1 = sd.get(f"{enc}blocks.0.mlp.fc1.weight")
    sizes: dict[str, Any] = dict(embed_dim=embed_dim, in_chans=in_chans, tubelet_size=tubelet, patch_size=patch,
                                 depth=_count_blocks(sd, f"{enc}blocks."))
    if fc1 is not None:
        sizes["mlp_ratio"] = fc1.shape[0] / embed_dim
    if "encoder_to_decoder.weight" in sd:
        sizes["decoder_dim"] = sd["encoder_to_decoder.weight"].shape[0]
        sizes["decoder_depth"] = _count_blocks(sd, "decoder.blocks.")
    same = [n for n, p in MODEL_PRESETS.items() if p["embed_dim"] == embed_dim]
    preset = next((n for n in same if MODEL_PRESETS[n]["depth"] == sizes["depth"]), same[0] if same else None)
    if base is not None:
        start = dataclasses.asdict(base)
    elif preset is not None:
        start = {**MODEL_PRESETS[preset], "preset": preset}
    else:  # an unusual width: assume the VideoMAE input (16 frames at 224 px)
        start = {"img_size": 224, "num_frames": 16}
    cfg = ModelConfig(**{**start, **sizes})
    # heads: explicit argument > `base` of the same width > the conventional table
    if num_heads or base is None or base.embed_dim != embed_dim:
        cfg.num_heads = num_heads or conventional_heads(embed_dim)
    if "decoder_dim" in sizes and (decoder_num_heads or base is None or base.decoder_dim != cfg.decoder_dim):
        cfg.decoder_num_heads = decoder_num_heads or conventional_heads(cfg.decoder_dim)
    cfg.validate()
    return cfg


def hf_config_to_model_config(hf: dict[str, Any]) -> tuple[ModelConfig, bool]:
    """A transformers VideoMAE ``config.json`` dict -> (ModelConfig, use_mean_pooling)."""
    if hf.get("model_type") != "videomae":
        raise ValueError(f"config.json: model_type is {hf.get('model_type')!r}, expected 'videomae'")
    size, patch = hf.get("image_size", 224), hf.get("patch_size", 16)
    if isinstance(size, (list, tuple)):
        if size[0] != size[1]:
            raise ValueError(f"config.json: only square inputs are supported, image_size={size}")
        size = size[0]
    if isinstance(patch, (list, tuple)):
        patch = patch[0]
    if hf.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"config.json: hidden_act={hf['hidden_act']!r} is not supported (only 'gelu')")
    hidden = hf.get("hidden_size", 768)
    same = [n for n, p in MODEL_PRESETS.items() if p["embed_dim"] == hidden]
    cfg = ModelConfig(
        preset=same[0] if same else ModelConfig.preset, img_size=size, num_frames=hf.get("num_frames", 16),
        patch_size=patch, tubelet_size=hf.get("tubelet_size", 2), in_chans=hf.get("num_channels", 3),
        embed_dim=hidden, depth=hf.get("num_hidden_layers", 12), num_heads=hf.get("num_attention_heads", 12),
        mlp_ratio=hf.get("intermediate_size", 4 * hidden) / hidden, decoder_dim=hf.get("decoder_hidden_size", 384),
        decoder_depth=hf.get("decoder_num_hidden_layers", 4),
        decoder_num_heads=hf.get("decoder_num_attention_heads", 6),
    )
    cfg.validate()
    return cfg, bool(hf.get("use_mean_pooling", True))


def model_config_to_hf(cfg: ModelConfig, architecture: str, use_mean_pooling: bool,
                       labels: list[str] | None = None) -> dict[str, Any]:
    """ModelConfig -> a transformers VideoMAE ``config.json`` dict (LayerNorm eps 1e-6, q/v biases)."""
    out: dict[str, Any] = {
        "architectures": [architecture], "model_type": "videomae", "image_size": cfg.img_size,
        "patch_size": cfg.patch_size, "num_channels": cfg.in_chans, "num_frames": cfg.num_frames,
        "tubelet_size": cfg.tubelet_size, "hidden_size": cfg.embed_dim, "num_hidden_layers": cfg.depth,
        "num_attention_heads": cfg.num_heads, "intermediate_size": int(cfg.embed_dim * cfg.mlp_ratio),
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02, "layer_norm_eps": 1e-6, "qv_bias": True, "use_mean_pooling": use_mean_pooling,
        "decoder_num_attention_heads": cfg.decoder_num_heads, "decoder_hidden_size": cfg.decoder_dim,
        "decoder_num_hidden_layers": cfg.decoder_depth, "decoder_intermediate_size": int(cfg.decoder_dim *
                                                                                         cfg.mlp_ratio),
        "norm_pix_loss": True, "torch_dtype": "float32",
    }
    if labels is not None:
        out["id2label"] = {str(i): name for i, name in enumerate(labels)}
        out["label2id"] = {name: i for i, name in enumerate(labels)}
    return out
