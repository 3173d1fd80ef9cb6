"""CLIP ViT-B/16, the paper's teacher (section 4.1), on timm's VisionTransformer, loaded offline from a local file.

Accepted forms of ``teacher.weights`` (detected from the file, never downloaded):

- OpenAI ``ViT-B-16.pt``: the TorchScript archive OpenAI publishes, or a state dict of the full model (keys
  ``visual.*`` next to the text tower, which is ignored) or of the visual tower alone (``conv1.weight``,
  ``transformer.resblocks.*``, ... as the SMILE release ships it); ``.pt``/``.pth``/``.bin``/``.safetensors``.
- open_clip: a bare state dict (same names as OpenAI's) or a training checkpoint
  ``{"epoch", "name", "state_dict": {"module.visual.*": ...}}``.
- Hugging Face: a directory written by ``CLIPVisionModel`` / ``CLIPModel.save_pretrained`` (``config.json`` +
  ``model.safetensors`` or ``pytorch_model.bin``).

Target = patch tokens after ``ln_post`` (timm's ``norm``), without the projection: 768-d for ViT-B/16, what the
official SMILE code reconstructs. ``teacher.layer`` and ``teacher.projection`` change that. Inputs are normalised
with CLIP's mean/std (``input_norm=native``) or ImageNet's (``input_norm=imagenet``, the official code's inputs).

The MLP activation is not stored in a state dict: OpenAI's CLIP uses QuickGELU, open_clip's own ViT-B-16 trainings
(LAION) GELU. ``clip_act=auto`` picks QuickGELU for OpenAI-named files and HF's ``hidden_act`` for HF directories,
GELU for open_clip training checkpoints; set ``teacher.clip_act`` when a bare open_clip file was trained with GELU.
"""

from __future__ import annotations

import json
import math
import re
import warnings
import zipfile
from pathlib import Path

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from smile_video.data.normalize import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD
from smile_video.teachers.vit_teachers import ViTTeacher, load_strict, read_state_dict

__all__ = [
    "CLIP_EXPECTED",
    "ClipWeights",
    "read_clip_file",
    "openai_visual_to_timm",
    "hf_vision_to_timm",
    "clip_vit_from_state_dict",
    "build_clip_teacher",
]

OPENAI_VIT_B16_URL = ("https://openaipublic.azureedge.net/clip/models/"
                      "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt")
CLIP_EXPECTED = (
    "CLIP ViT-B/16 weights: OpenAI's ViT-B-16.pt (TorchScript or state dict; " + OPENAI_VIT_B16_URL + "), the "
    "visual-tower state dict released with SMILE (https://github.com/fmthoker/SMILE, "
    "https://huggingface.co/fmthoker/SMILE), an open_clip checkpoint, or a Hugging Face CLIPVisionModel directory "
    "(config.json + model.safetensors)"
)

# OpenAI / open_clip visual tower -> timm VisionTransformer. Applied in order to each key.
_OPENAI_SWAPS = (
    ("conv1.", "patch_embed.proj."),
    ("ln_pre.", "norm_pre."),
    ("ln_post.", "norm."),
    ("transformer.resblocks.", "blocks."),
    (".ln_1.", ".norm1."),
    (".ln_2.", ".norm2."),
    (".attn.in_proj_weight", ".attn.qkv.weight"),
    (".attn.in_proj_bias", ".attn.qkv.bias"),
    (".attn.out_proj.", ".attn.proj."),
    (".mlp.c_fc.", ".mlp.fc1."),
    (".mlp.c_proj.", ".mlp.fc2."),
)
# Hugging Face CLIPVisionTransformer -> timm (q/k/v are concatenated separately).
_HF_SWAPS = (
    ("embeddings.patch_embedding.", "patch_embed.proj."),
    ("pre_layrnorm.", "norm_pre."),
    ("post_layernorm.", "norm."),
    ("encoder.layers.", "blocks."),
    (".layer_norm1.", ".norm1."),
    (".layer_norm2.", ".norm2."),
    (".self_attn.out_proj.", ".attn.proj."),
)


class ClipWeights:
    """A CLIP visual tower read from disk: timm state dict, optional projection ``(width, out)``, heads, act."""

    def __init__(self, state_dict: dict[str, Tensor], proj: Tensor | None, num_heads: int, act: str, form: str):
        self.state_dict, self.proj, self.num_heads, self.act, self.form = state_dict, proj, num_heads, act, form


def _swap(key: str, table: tuple[tuple[str, str], ...]) -> str:
    for old, new in table:
        key = key.replace(old, new)
    return key


def openai_visual_to_timm(sd: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor | None]:
    """OpenAI-named visual tower (no ``visual.`` prefix) -> (timm state dict, projection ``(width, out)`` or None)."""
    out: dict[str, Tensor] = {}
    proj = None
    for k, v in sd.items():
        if k == "proj":
            proj = v
        elif k == "class_embedding":
            out["cls_token"] = v.reshape(1, 1, -1)  # (W,) -> (1, 1, W)
        elif k == "positional_embedding":
            out["pos_embed"] = v.unsqueeze(0)  # (1 + L, W) -> (1, 1 + L, W)
        else:
            out[_swap(k, _OPENAI_SWAPS)] = v
    return out, proj


def hf_vision_to_timm(sd: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor | None]:
    """Hugging Face CLIP vision weights (``vision_model.`` prefix optional) -> (timm state dict, projection)."""
    sd = {k.removeprefix("vision_model."): v for k, v in sd.items()
          if not k.startswith(("text_model.", "text_projection", "logit_scale"))}
    out: dict[str, Tensor] = {}
    proj = None
    qkv: dict[tuple[str, str], dict[str, Tensor]] = {}
    for k, v in sd.items():
        if k == "visual_projection.weight":
            proj = v.t()  # (out, W) -> (W, out)
        elif k == "embeddings.position_ids":
            continue  # an index buffer, not a weight
        elif k == "embeddings.class_embedding":
            out["cls_token"] = v.reshape(1, 1, -1)
        elif k == "embeddings.position_embedding.weight":
            out["pos_embed"] = v.unsqueeze(0)
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", k):
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = v
        else:
            out[_swap(k, _HF_SWAPS)] = v
    for (layer, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"HF CLIP weights: layer {layer} {kind} has only {sorted(parts)} of q/k/v projections")
        out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])  # (3W, ...)
    return out, proj


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in name for name in zf.namelist())


def _read_hf_dir(path: Path) -> tuple[dict[str, Tensor], dict]:
    cfg_path = path / "config.json"
    files = [path / "model.safetensors", path / "pytorch_model.bin"]
    weights = next((f for f in files if f.is_file()), None)
    if not cfg_path.is_file() or weights is None:
        raise FileNotFoundError(f"teacher.weights={str(path)!r} is a directory but not a Hugging Face CLIP "
                                f"directory (needs config.json and model.safetensors or pytorch_model.bin); "
                                f"expected {CLIP_EXPECTED}")
    config = json.loads(cfg_path.read_text())
    config = config.get("vision_config", config)  # CLIPModel nests the vision tower's config
    return read_state_dict(weights, CLIP_EXPECTED), config


def read_clip_file(path: str | Path, act: str = "auto") -> ClipWeights:
    """Read any supported CLIP file or directory into timm names (see the module docstring for the forms)."""
    path = Path(path)
    if path.is_dir():
        sd, config = _read_hf_dir(path)
        timm_sd, proj = hf_vision_to_timm(sd)
        hf_act = config.get("hidden_act", "quick_gelu")
        if hf_act not in ("quick_gelu", "gelu"):
            raise ValueError(f"{path}/config.json: hidden_act={hf_act!r} is not supported (quick_gelu | gelu)")
        width = timm_sd["pos_embed"].shape[-1] if "pos_embed" in timm_sd else 0
        heads = int(config.get("num_attention_heads", max(width // 64, 1)))
        return ClipWeights(timm_sd, proj, heads, hf_act if act == "auto" else act, "huggingface")
    if not path.is_file():
        raise FileNotFoundError(f"teacher.weights={str(path)!r}: no such file or directory; expected {CLIP_EXPECTED}")
    if _is_torchscript(path):
        try:  # OpenAI's release: a TorchScript archive; its state dict holds plain tensors.
            with warnings.catch_warnings():  # torch.jit is deprecated, yet the only reader of OpenAI's archive
                warnings.simplefilter("ignore", FutureWarning)
                sd = dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"teacher.weights={str(path)!r}: unreadable TorchScript archive ({e}); "
                             f"expected {CLIP_EXPECTED}") from e
        form, default_act = "openai-torchscript", "quick_gelu"
    else:
        sd = read_state_dict(path, CLIP_EXPECTED)
        form, default_act = "state-dict", "quick_gelu"
        if isinstance(sd.get("state_dict"), dict):  # open_clip training checkpoint
            sd, form, default_act = sd["state_dict"], "open_clip-checkpoint", "gelu"
    sd = {k.removeprefix("module."): v for k, v in sd.items() if isinstance(v, Tensor)}
    if any(k.startswith("visual.") for k in sd):  # full model: keep the visual tower
        visual = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
        form += "/full-model"
    elif "conv1.weight" in sd:
        visual = {k: v for k, v in sd.items() if k not in ("input_resolution", "context_length", "vocab_size")}
        form += "/visual-tower"
    elif any(k.endswith("embeddings.patch_embedding.weight") for k in sd):  # HF weights file without its dir
        timm_sd, proj = hf_vision_to_timm(sd)
        width = timm_sd["pos_embed"].shape[-1]
        return ClipWeights(timm_sd, proj, max(width // 64, 1), "quick_gelu" if act == "auto" else act, "hf-file")
    else:
        raise ValueError(f"teacher.weights={str(path)!r}: not a CLIP checkpoint (no 'visual.*', 'conv1.weight' or "
                         f"HF 'embeddings.patch_embedding.weight' key; found e.g. {sorted(sd)[:6]}); "
                         f"expected {CLIP_EXPECTED}")
    timm_sd, proj = openai_visual_to_timm(visual)
    width = timm_sd["pos_embed"].shape[-1] if "pos_embed" in timm_sd else 64
    return ClipWeights(timm_sd, proj, max(width // 64, 1), default_act if act == "auto" else act, form)


def clip_vit_from_state_dict(w: ClipWeights, source: str = "CLIP weights") -> VisionTransformer:
    """Build the timm CLIP ViT whose sizes the state dict implies, and load it strictly."""
    sd = w.state_dict
    for key in ("pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight"):
        if key not in sd:
            raise ValueError(f"{source}: missing {key!r} after conversion; expected {CLIP_EXPECTED}")
    width, patch = sd["patch_embed.proj.weight"].shape[0], sd["patch_embed.proj.weight"].shape[-1]
    side = math.isqrt(sd["pos_embed"].shape[1] - 1)
    if side * side + 1 != sd["pos_embed"].shape[1]:
        raise ValueError(f"{source}: pos_embed {tuple(sd['pos_embed'].shape)} is not 1 + a square grid")
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    vit = VisionTransformer(
        img_size=side * patch, patch_size=patch, embed_dim=width, depth=depth, num_heads=w.num_heads,
        mlp_ratio=sd["blocks.0.mlp.fc1.weight"].shape[0] / width, pre_norm=True, norm_layer=nn.LayerNorm,
        act_layer=w.act, num_classes=0, global_pool="token",
    )
    load_strict(vit, sd, source)
    return vit


def build_clip_teacher(weights: str, grid: tuple[int, int, int], tubelet: int, layer: int = -1,
                       projection: bool = False, input_norm: str = "native", act: str = "auto",
                       resize: str = "grid", dtype: str = "auto", frame_chunk: int = 0) -> ViTTeacher:
    """The paper's teacher from a local file: (B, 3, T, H, W) -> (B, N, 768) patch tokens after ``ln_post``."""
    if not weights:
        raise FileNotFoundError(f"teacher.weights is empty: teacher.kind=clip needs {CLIP_EXPECTED}")
    w = read_clip_file(weights, act)
    vit = clip_vit_from_state_dict(w, f"teacher.weights={weights!r} ({w.form})")
    if projection and w.proj is None:
        raise ValueError(f"teacher.projection=true but teacher.weights={weights!r} ({w.form}) has no visual "
                         "projection (OpenAI 'proj' / HF 'visual_projection.weight')")
    if projection and layer % len(vit.blocks) != len(vit.blocks) - 1:
        raise ValueError("teacher.projection=true applies to the last layer only (after ln_post); set teacher.layer=-1")
    mean, std = (CLIP_MEAN, CLIP_STD) if input_norm == "native" else (IMAGENET_MEAN, IMAGENET_STD)
    return ViTTeacher(vit, grid, tubelet, layer=layer, mean=mean, std=std, resize=resize,
                      proj=w.proj if projection else None, dtype=dtype, frame_chunk=frame_chunk)
