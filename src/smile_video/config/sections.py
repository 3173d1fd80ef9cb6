"""The pretraining job's config sections (model, mask, motion, teacher, data, train, run) and the model presets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .checks import ConfigError, check_choice, check_range

__all__ = ["MODEL_PRESETS", "ModelConfig", "MaskConfig", "MotionConfig", "TeacherConfig", "DataConfig", "TrainConfig",
           "RunConfig", "PretrainJob"]


# --------------------------------------------------------------------------------------------------------------
# Presets are data. Architecture sizes follow VideoMAE (ViT-S/B/L: Dosovitskiy et al. widths and depths; decoder
# width 192 for ViT-S, 384 for ViT-B, 512 for ViT-L, depth 4). `tiny` is ours: it trains on 2 CPU cores.
# --------------------------------------------------------------------------------------------------------------
POSITION_KINDS = ("flat", "separable")  # model.pos_embed (models.vit.position_table)

MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        embed_dim=128, depth=4, num_heads=4, decoder_dim=64, decoder_depth=2, decoder_num_heads=2,
        img_size=64, num_frames=8,
    ),
    "vit_s": dict(
        embed_dim=384, depth=12, num_heads=6, decoder_dim=192, decoder_depth=4, decoder_num_heads=3,
        img_size=224, num_frames=16,
    ),
    "vit_b": dict(
        embed_dim=768, depth=12, num_heads=12, decoder_dim=384, decoder_depth=4, decoder_num_heads=6,
        img_size=224, num_frames=16,
    ),
    "vit_l": dict(
        embed_dim=1024, depth=24, num_heads=16, decoder_dim=512, decoder_depth=4, decoder_num_heads=8,
        img_size=224, num_frames=16,
    ),
}

# torch.compile modes (train.compile_mode); reduce-overhead captures CUDA graphs
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class ModelConfig:
    """The student: a VideoMAE ViT with joint space-time attention and a shallow decoder."""

    preset: str = "tiny"  # tiny | vit_s | vit_b | vit_l; fills every size below not set explicitly
    img_size: int = 64
    num_frames: int = 8
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    decoder_dim: int = 64
    decoder_depth: int = 2
    decoder_num_heads: int = 2
    drop_path: float = 0.0
    grad_checkpointing: bool = False
    # Pretraining only: what the decoder reads of the encoder's visible tokens. "none": the tokens as they are
    # (VideoMAE / SMILE). "batch": each channel standardised over the batch's visible tokens (batch statistics, no
    # parameters, no running averages): the decoder can no longer ask the encoder for less variation, which drives
    # the encoder's tokens to one shared vector within 50 steps on CPU-scale data (docs/fidelity.md, section 10).
    decoder_input_norm: str = "none"
    # Pretraining only: which tokens a decoder token attends to. "joint": every token (VideoMAE / SMILE). "frame": only
    # the tokens of its own time step, so a masked token is predicted from what the encoder wrote into the visible
    # tokens of its time step: where an object is at a masked time must be inferred inside the encoder, from the
    # other time steps (not in the paper; docs/fidelity.md, section 24).
    decoder_attention: str = "joint"
    # Fixed positions of encoder and decoder. "flat": VideoMAE's 1-D sinusoid over the flattened token index (SMILE,
    # and what official checkpoints were trained with). "separable": one sinusoid per axis (time, height, width),
    # concatenated (MAE's 2-D table in 3-D): on CPU-scale data the flat table's decoder does not learn to read its
    # visible neighbours in 400 steps, the separable one does (docs/fidelity.md, section 16).
    pos_embed: str = "flat"

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') = (frames / tubelet, size / patch, size / patch)."""
        side = self.img_size // self.patch_size
        return (self.num_frames // self.tubelet_size, side, side)

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def validate(self) -> None:
        if self.preset not in MODEL_PRESETS:
            raise ConfigError(f"model.preset: unknown preset {self.preset!r}; choose one of {sorted(MODEL_PRESETS)}")
        if self.img_size % self.patch_size:
            raise ConfigError(f"model.img_size={self.img_size} is not divisible by model.patch_size={self.patch_size}")
        if self.num_frames % self.tubelet_size:
            raise ConfigError(
                f"model.num_frames={self.num_frames} is not divisible by model.tubelet_size={self.tubelet_size}"
            )
        for name, dim, heads in (("", self.embed_dim, self.num_heads), ("decoder_", self.decoder_dim,
                                                                         self.decoder_num_heads)):
            if dim % heads:
                raise ConfigError(f"model.{name}dim={dim} is not divisible by model.{name}num_heads={heads}")
        check_range("model.drop_path", self.drop_path, 0.0, 1.0)
        check_choice("model.decoder_input_norm", self.decoder_input_norm, ("none", "batch"))
        check_choice("model.decoder_attention", self.decoder_attention, ("joint", "frame"))
        check_choice("model.pos_embed", self.pos_embed, POSITION_KINDS)
        if self.pos_embed == "separable":
            for name, dim in (("embed_dim", self.embed_dim), ("decoder_dim", self.decoder_dim)):
                if dim % 2 or dim < 6:
                    raise ConfigError(f"model.pos_embed=separable needs an even model.{name} of at least 6, got {dim}")


@dataclass
class MaskConfig:
    """Masking (True = masked). Paper section 4.3 and F.3: trajectory then tube masking, total ratio m = 0.8."""

    kind: str = "trajectory"  # trajectory | tube | random
    ratio: float = 0.8
    # Fraction of a tubelet's pixels an object must cover (in any frame of the tubelet) to count as an object token.
    coverage_threshold: float = 0.1
    # paper: object tokens masked at ratio m, tube masking fills the rest (section 4.3).
    # official: the released code's rule (all object tokens masked, a fraction unmasked, then rebalanced).
    variant: str = "paper"

    def validate(self) -> None:
        check_choice("mask.kind", self.kind, ("trajectory", "tube", "random"))
        check_choice("mask.variant", self.variant, ("paper", "official"))
        check_range("mask.ratio", self.ratio, 0.0, 1.0, inclusive_high=False)
        check_range("mask.coverage_threshold", self.coverage_threshold, 0.0, 1.0)


@dataclass
class MotionConfig:
    """Synthetic object motion (paper section 3.3 and 4.1). Pixel sizes are at 224 px and scale with resolution."""

    enabled: bool = True
    bank: str = "default"  # "default" (embedded OpenMoji bank, pretraining split) or a path to a bank file
    num_objects: int = 2  # Table 4f: 2 is best
    size_min: float = 32.0  # object size P x Q uniform in [32, 128] px (section 4.1)
    size_max: float = 128.0
    rotation_min: float = -90.0  # degrees (section 4.1)
    rotation_max: float = 90.0
    scale_min: float = 0.5  # (section 4.1)
    scale_max: float = 1.5
    trajectory: str = "paper"  # paper (M points, Gaussian kappa, downsample) | official (released code)
    num_points: int = 128  # M >> T (paper trajectory; docs/motion.md justifies M = 128, kappa = 8)
    kappa: float = 8.0  # Gaussian smoothing factor (std), in points of the M-point path
    device: str = "auto"  # where compositing runs: auto (the training device) | cpu | cuda
    kernel: str = "auto"  # compositing kernel: auto (c on CPU, triton on CUDA, else torch) | c | triton | torch

    def validate(self) -> None:
        check_choice("motion.trajectory", self.trajectory, ("paper", "official"))
        check_choice("motion.kernel", self.kernel, ("auto", "c", "triton", "torch"))
        if self.num_objects < 0:
            raise ConfigError(f"motion.num_objects must be >= 0, got {self.num_objects}")
        if not 0 < self.size_min <= self.size_max:
            raise ConfigError(f"motion.size_min/size_max must satisfy 0 < min <= max, got {self.size_min}, "
                              f"{self.size_max}")
        if not 0 < self.scale_min <= self.scale_max:
            raise ConfigError(f"motion.scale_min/scale_max must satisfy 0 < min <= max, got {self.scale_min}, "
                              f"{self.scale_max}")
        if self.rotation_min > self.rotation_max:
            raise ConfigError("motion.rotation_min must be <= motion.rotation_max")
        if self.num_points < 2 or self.kappa <= 0:
            raise ConfigError("motion.num_points must be >= 2 and motion.kappa > 0")


@dataclass
class TeacherConfig:
    """The frozen image encoder whose per-frame patch features are the reconstruction targets (paper 3.2)."""

    kind: str = "embedded"  # embedded (EfficientNet-Lite0, ships in a package) | clip | dino | dinov2 | mae | pixel
    weights: str = ""  # local weights file or directory (clip / dino / dinov2 / mae)
    arch: str = ""  # timm architecture name override (dino / dinov2 / mae); empty = the usual ViT-B/16
    layer: int = -1  # which block's output (-1: the last, after the final norm)
    projection: bool = False  # CLIP: apply the visual projection (768 -> 512); the paper's code does not
    input_norm: str = "native"  # native (the teacher's own mean/std) | imagenet (the official SMILE code's inputs)
    target_norm: str = "official"  # official (per sample+channel over tokens) | layernorm (per token) | none
    # Which frames of a tubelet give its target: first (the paper) | all (their features concatenated, the target
    # dim times the tubelet size, the teacher run on every frame; image teachers only)
    frames: str = "first"
    dtype: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16
    # The frozen weights' storage: float32 | bfloat16 (with teacher.dtype bf16: no per-step weight casts)
    weights_dtype: str = "float32"
    # Grid matching: grid (resize frames so the teacher's patch grid equals the student's h' x w', position
    # embeddings interpolated) | native (frames resized to the teacher's own input size, features pooled to h' x w')
    resize: str = "grid"
    clip_act: str = "auto"  # CLIP MLP activation: auto (from the file's format) | quick_gelu (OpenAI) | gelu
    frame_chunk: int = 0  # frames per teacher forward (bounds memory); 0 = all at once (embedded, CPU: ~2^17 px)
    # Weight of a second loss on the *visible* tokens: a linear head on the encoder's output regresses their own
    # targets (UMT's unmasked-token alignment, Li et al. 2023); 0 = the paper's loss, masked tokens only
    visible_weight: float = 0.0

    def validate(self) -> None:
        check_choice("teacher.kind", self.kind, ("embedded", "clip", "dino", "dinov2", "mae", "pixel"))
        check_choice("teacher.resize", self.resize, ("grid", "native"))
        check_choice("teacher.clip_act", self.clip_act, ("auto", "quick_gelu", "gelu"))
        if self.frame_chunk < 0:
            raise ConfigError(f"teacher.frame_chunk must be >= 0, got {self.frame_chunk}")
        if not math.isfinite(self.visible_weight) or self.visible_weight < 0:
            raise ConfigError(f"teacher.visible_weight must be a finite number >= 0, got {self.visible_weight}")
        check_choice("teacher.input_norm", self.input_norm, ("native", "imagenet"))
        check_choice("teacher.target_norm", self.target_norm, ("official", "layernorm", "none"))
        check_choice("teacher.frames", self.frames, ("first", "all"))
        if self.frames == "all" and self.kind == "pixel":
            raise ConfigError("teacher.frames=all applies to image teachers: pixel targets already cover every frame "
                              "of the tubelet")
        check_choice("teacher.dtype", self.dtype, ("auto", "float32", "bfloat16"))
        check_choice("teacher.weights_dtype", self.weights_dtype, ("float32", "bfloat16"))
        if self.weights_dtype == "bfloat16" and self.dtype == "float32":
            raise ConfigError("teacher.weights_dtype=bfloat16 needs a bf16 teacher: teacher.dtype=bfloat16 (or auto "
                              "on CUDA), not float32")
        if self.kind in ("clip", "dino", "dinov2", "mae") and not self.weights:
            raise ConfigError(
                f"teacher.weights: teacher.kind={self.kind!r} needs a local weights file (no model hub is reached); "
                "set teacher.weights=PATH, or use teacher.kind=embedded"
            )


@dataclass
class DataConfig:
    """Where clips come from: a video list (Kinetics, SSv2, ...) or the synthetic source (paper Table 7)."""

    source: str = "synthetic"  # synthetic | video
    train_list: str = ""  # VideoMAE-format list, CSV/TSV/JSONL, or a folder of videos
    data_root: str = ""  # prefix for relative paths in the list
    # Background of synthetic clips (Table 7): noise | black | deadleaves (procedural, docs/motion.md) | image (still
    # photo) | frame (one frame of a natural clip repeated; needs train_list) | video (natural clips; needs train_list)
    background: str = "noise"
    # data.background=image: a folder of still images (searched recursively; e.g. the paper's Places-80K); empty = the
    # photographs scikit-image ships (the embedded default)
    image_dir: str = ""
    epoch_size: int = 256  # clips per epoch for the synthetic source
    sampling_rate: int = 4  # temporal stride: 4 for K400, 2 for SSv2 (F.3)
    # Multiple sampling (F.3 uses 2): clips per decoded clip, each with its own crop, flip, motion and mask; the frames
    # are decoded once and shared, as in VideoMAE / SMILE (repeated augmentation).
    num_samples: int = 1
    per_sample_start: bool = False  # true: each of the num_samples clips draws its own start (and decodes it)
    # Where train clips start: uniform (any frame) | keyframe (at most keyframe_window frames after a keyframe: no
    # decoding lead-in, but biased towards shot starts; docs/data.md)
    start_sampling: str = "uniform"
    keyframe_window: int = 0
    crop_scales: list[float] = field(default_factory=lambda: [1.0, 0.875, 0.75, 0.66])  # GroupMultiScaleCrop
    flip: bool = False
    # auto (the fastest installed: pyav, torchcodec, decord; torchcodec with decode_device=cuda) | pyav | decord |
    # torchcodec
    decoder: str = "auto"
    decode_device: str = "cpu"  # cpu | cuda (NVDEC; needs torchcodec with CUDA and spawned DataLoader workers)
    # DataLoader worker processes per rank: -1 = auto (CPU cores per rank - 1, at most 10, when videos are decoded;
    # 0 for the purely synthetic sources); 0 = load in the training process
    num_workers: int = -1
    prefetch_factor: int = 2  # micro-batches each worker keeps ready
    min_frames: int = 0  # videos with fewer frames are skipped as too short; 0 = the clip length (model.num_frames)
    max_skips: int = 10  # consecutive bad videos tolerated for one item before training stops with an error
    label_map: str = ""  # optional file mapping class names to ids (docs/data.md); else sorted names

    def validate(self) -> None:
        if self.min_frames < 0 or self.max_skips < 0:
            raise ConfigError("data.min_frames and data.max_skips must be >= 0")
        check_choice("data.source", self.source, ("synthetic", "video"))
        check_choice("data.background", self.background, ("noise", "black", "deadleaves", "image", "frame", "video"))
        check_choice("data.decoder", self.decoder, ("auto", "pyav", "decord", "torchcodec"))
        check_choice("data.decode_device", self.decode_device, ("cpu", "cuda"))
        check_choice("data.start_sampling", self.start_sampling, ("uniform", "keyframe"))
        if self.keyframe_window < 0 or self.prefetch_factor < 1:
            raise ConfigError(f"data.keyframe_window must be >= 0 and data.prefetch_factor >= 1, got "
                              f"{self.keyframe_window}, {self.prefetch_factor}")
        if self.decode_device == "cuda" and self.decoder not in ("auto", "torchcodec"):
            raise ConfigError(f"data.decode_device=cuda needs data.decoder=torchcodec (or auto), got {self.decoder!r}")
        if self.source == "video" and not self.train_list:
            raise ConfigError("data.train_list: data.source=video needs a list of videos (data.train_list=PATH)")
        if self.sampling_rate < 1 or self.num_samples < 1 or self.epoch_size < 1 or self.num_workers < -1:
            raise ConfigError("data.sampling_rate, data.num_samples and data.epoch_size must be >= 1; "
                              "data.num_workers >= 0 (or -1 = auto)")


@dataclass
class TrainConfig:
    """Optimisation (paper Table 18, VideoMAE recipe) and the training strategy (paper 3.4)."""

    strategy: str = "progressive"  # single | mixed | progressive
    epochs: int = 2  # single / mixed: total epochs
    stage1_epochs: int = 1  # progressive: epochs on augmented clips
    stage2_epochs: int = 1  # progressive: epochs on original clips
    batch_size: int = 8  # global effective batch (all ranks, after accumulation)
    micro_batch_size: int = 0  # per-rank batch per step; 0 = batch_size / world_size (no accumulation)
    lr: float = 1.5e-4  # base learning rate (Table 18); the optimizer uses lr * batch_size / 256
    min_lr: float = 1e-6
    warmup_epochs: float = 0.0  # Table 18: 40
    restart_schedule: bool = False  # progressive: restart warmup + cosine at stage 2 (as two chained runs would)
    weight_decay: float = 0.05  # Table 18
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # Table 18
    clip_grad: float = 0.0  # 0 = off
    # Keep the tubelet embedding at its random init (MoCo v3's frozen random patch projection, Chen et al. 2021);
    # finetuning trains it. Off in the paper's recipe; docs/fidelity.md section 9 says when it matters.
    freeze_patch_embed: bool = False
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    # torch.compile the student and the teacher (the training forward has static shapes: one graph each)
    compile: bool = False
    # torch.compile's mode: default | reduce-overhead (CUDA graphs) | max-autotune | max-autotune-no-cudagraphs
    compile_mode: str = "default"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    save_every: int = 0  # optimizer steps between checkpoints; 0 = only at the end of each stage
    keep_last: int = 2
    log_every: int = 1

    @property
    def total_epochs(self) -> int:
        return self.stage1_epochs + self.stage2_epochs if self.strategy == "progressive" else self.epochs

    def validate(self) -> None:
        check_choice("train.strategy", self.strategy, ("single", "mixed", "progressive"))
        check_choice("train.precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        check_choice("train.device", self.device, ("auto", "cpu", "cuda"))
        check_choice("train.compile_mode", self.compile_mode, COMPILE_MODES)
        if self.batch_size < 1 or self.micro_batch_size < 0:
            raise ConfigError("train.batch_size must be >= 1 and train.micro_batch_size >= 0")
        if self.micro_batch_size and self.batch_size % self.micro_batch_size:
            raise ConfigError(f"train.batch_size={self.batch_size} is not a multiple of "
                              f"train.micro_batch_size={self.micro_batch_size}")
        if len(self.betas) != 2:
            raise ConfigError(f"train.betas must have two values, got {self.betas}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if self.total_epochs < 1:
            raise ConfigError("train: at least one epoch is needed (train.epochs, or train.stage1_epochs + "
                              "train.stage2_epochs for progressive)")


@dataclass
class RunConfig:
    """Where a run writes (one directory: config, metrics, checkpoints, figures) and how it talks."""

    out_dir: str = "runs/pretrain"
    resume: str = ""  # "" | auto | PATH to a training-state checkpoint
    quiet: bool = False
    # A run directory holds one run (smile_video.run_guard): a new run refuses a folder that is not empty unless
    # overwrite=true, which removes the earlier run's files first; resume continues the run that is there.
    overwrite: bool = False
    force_resume: bool = False  # resume although the config changed in a way that alters the run's result


@dataclass
class PretrainJob:
    """Everything `smile pretrain` needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
