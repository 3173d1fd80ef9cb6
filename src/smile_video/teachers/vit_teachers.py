"""ViT teachers on timm's VisionTransformer: DINO, DINOv2 and MAE from local weights (paper Table 4b).

``ViTTeacher`` is shared with CLIP (``clip.py``): patch tokens of one block (the last, after the final norm, by
default), position embeddings interpolated once to the student's grid.

Accepted files (``teacher.weights``): a ``.pth`` / ``.pt`` / ``.bin`` state dict (loaded with ``weights_only=True``)
or ``.safetensors``, in timm's key names, optionally wrapped in ``{"model": ...}`` (MAE releases),
``{"state_dict": ...}``, or a full DINO training checkpoint (``{"teacher": {"backbone.*": ...}}``), optionally
``module.``-prefixed. The official DINO (``dino_vitbase16_pretrain.pth``), DINOv2 (``dinov2_vitb14_pretrain.pth``)
and MAE (``mae_pretrain_vit_base.pth``) releases and timm's own ``model.safetensors`` use these names.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

from smile_video.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from smile_video.teachers.base import ImageTeacher

__all__ = ["ViTTeacher", "VIT_ARCHS", "read_state_dict", "timm_vit_state_dict", "load_strict", "build_vit_teacher"]

# Default timm architecture per teacher kind (the paper's Table 4b uses ViT-B models).
VIT_ARCHS = {
    "dino": "vit_base_patch16_224",
    "dinov2": "vit_base_patch14_dinov2",
    "mae": "vit_base_patch16_224",
}

# Where the authors of each model publish the weights (for error messages).
VIT_SOURCES = {
    "dino": "dino_vitbase16_pretrain.pth from https://github.com/facebookresearch/dino",
    "dinov2": "dinov2_vitb14_pretrain.pth from https://github.com/facebookresearch/dinov2",
    "mae": "mae_pretrain_vit_base.pth from https://github.com/facebookresearch/mae",
}


def read_state_dict(path: str | Path, what: str) -> dict[str, Tensor]:
    """Read tensors from a local ``.safetensors`` or torch pickle (``weights_only=True``), naming ``what`` on error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher.weights={str(path)!r}: no such file; expected {what}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any read failure is a malformed file for the user
        raise ValueError(f"teacher.weights={str(path)!r}: cannot read it as a state dict ({type(e).__name__}: "
                         f"{e}); expected {what}") from e
    if not isinstance(obj, dict):
        raise ValueError(f"teacher.weights={str(path)!r}: holds a {type(obj).__name__}, not a state dict; "
                         f"expected {what}")
    return obj


def _strip(sd: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def timm_vit_state_dict(obj: dict) -> dict[str, Tensor]:
    """Unwrap a ViT checkpoint into timm key names (pure ``dict -> dict``).

    Handles ``model`` / ``state_dict`` / DINO ``teacher`` wrappers and ``module.`` / ``backbone.`` prefixes; drops
    keys a feature extractor never uses (``mask_token``, classification / projection heads).
    """
    for wrapper in ("teacher", "model", "state_dict"):
        if wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
            break
    sd = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    sd = _strip(_strip(sd, "module."), "backbone.")
    if any(k.startswith("backbone.") for k in sd):  # DINO teacher: backbone.* plus head.*
        sd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    drop = ("mask_token", "head.", "fc_norm.", "decoder")
    return {k: v for k, v in sd.items() if not k.startswith(drop)}


def load_strict(model: torch.nn.Module, sd: dict[str, Tensor], source: str) -> None:
    """Load ``sd`` into ``model``; any missing / unexpected key or shape mismatch is an error naming them."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(sd) & set(own)) if sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{source}: weights do not fit the teacher architecture; missing keys {missing[:8]}"
                         f"{' ...' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}"
                         f"{' ...' if len(unexpected) > 8 else ''}, shape mismatches {shapes[:8]}")
    model.load_state_dict(sd, strict=True)


class ViTTeacher(ImageTeacher):
    """Patch tokens of a timm ``VisionTransformer`` as per-frame targets.

    ``layer`` picks a block (python indexing over ``model.blocks``); the last block's output goes through the
    final norm (CLIP's ``ln_post``), an intermediate block's output is returned as is. ``proj`` (optional,
    ``(width, out_dim)``) is applied to every patch token (CLIP's visual projection).
    """

    def __init__(self, vit: VisionTransformer, grid: tuple[int, int, int], tubelet: int, layer: int = -1,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 resize: str = "grid", proj: Tensor | None = None, dtype: str = "auto",
                 frame_chunk: int = 0) -> None:
        depth = len(vit.blocks)
        if not -depth <= layer < depth:
            raise ValueError(f"teacher.layer={layer} is outside the teacher's {depth} blocks "
                             f"(use 0..{depth - 1} or -1 for the last)")
        patch = vit.patch_embed.patch_size
        native = vit.patch_embed.img_size
        _, h, w = grid
        frame_size = (h * patch[0], w * patch[1]) if resize == "grid" else tuple(native)
        dim = proj.shape[1] if proj is not None else vit.embed_dim
        super().__init__(dim, grid, tubelet, frame_size, mean, std, dtype, frame_chunk)
        if tuple(native) != tuple(frame_size):
            vit.set_input_size(img_size=frame_size)  # resamples the position embedding (bicubic) once
        self.vit = vit
        self.layer = layer % depth
        self.proj = torch.nn.Parameter(proj.clone()) if proj is not None else None
        self.freeze()

    def encode(self, frames: Tensor) -> Tensor:
        """Normalised frames ``(F, 3, Hf, Wf)`` -> patch features ``(F, D, Hf / p, Wf / p)``."""
        vit = self.vit
        x = vit.patch_embed(frames)  # (F, L, C)
        x = vit._pos_embed(x)  # (F, prefix + L, C)
        x = vit.norm_pre(x)
        for block in vit.blocks[: self.layer + 1]:
            x = block(x)
        if self.layer == len(vit.blocks) - 1:
            x = vit.norm(x)
        x = x[:, vit.num_prefix_tokens:]  # (F, L, C) patch tokens only
        if self.proj is not None:
            x = x @ self.proj.to(x.dtype)  # (F, L, D)
        gh, gw = vit.patch_embed.grid_size
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], gh, gw)  # (F, D, gh, gw)


def build_vit_teacher(kind: str, weights: str, arch: str, grid: tuple[int, int, int], tubelet: int,
                      layer: int = -1, resize: str = "grid", dtype: str = "auto", frame_chunk: int = 0,
                      **timm_kwargs) -> ViTTeacher:
    """DINO / DINOv2 / MAE teacher: timm architecture ``arch`` (default per kind) + local ``weights``, ImageNet input.

    Never random: the weights file must exist and fit the architecture exactly.
    """
    if kind not in VIT_ARCHS:
        raise ValueError(f"teacher.kind={kind!r} is not a timm ViT teacher; choose one of {sorted(VIT_ARCHS)}")
    what = f"{kind} weights for timm {arch or VIT_ARCHS[kind]} ({VIT_SOURCES[kind]})"
    if not weights:
        raise FileNotFoundError(f"teacher.weights is empty: teacher.kind={kind} needs {what}")
    sd = timm_vit_state_dict(read_state_dict(weights, what))
    vit = timm.create_model(arch or VIT_ARCHS[kind], pretrained=False, num_classes=0, **timm_kwargs)
    if not isinstance(vit, VisionTransformer):
        raise ValueError(f"teacher.arch={arch!r} is not a timm VisionTransformer")
    if "pos_embed" in sd and sd["pos_embed"].shape != vit.pos_embed.shape:
        raise ValueError(f"teacher.weights={weights!r}: pos_embed {tuple(sd['pos_embed'].shape)} does not fit "
                         f"{arch or VIT_ARCHS[kind]} {tuple(vit.pos_embed.shape)}; set teacher.arch to the "
                         "architecture the weights were trained with")
    load_strict(vit, sd, f"teacher.weights={weights!r}")
    return ViTTeacher(vit, grid, tubelet, layer=layer, resize=resize, dtype=dtype, frame_chunk=frame_chunk)
