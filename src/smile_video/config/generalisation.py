"""Config sections of the generalisation evaluations beyond classification (paper appendix B, Table 10):
unsupervised video object segmentation (`VosConfig`, `smile vos`) and temporal action localisation features
(`TadConfig`, `smile tad-features`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .checks import ConfigError, check_choice
from .sections import ModelConfig, RunConfig

__all__ = ["VosConfig", "VosJob", "TadConfig", "TadJob"]


@dataclass
class VosConfig:
    """Unsupervised VOS, SIGMA's protocol: per-video k-means on frozen patch features, Hungarian matching, mIoU."""

    root: str = ""  # dataset root (docs/evaluation.md: the DAVIS-2017 and YouTube-VOS layouts)
    layout: str = "davis"  # davis | ytvos
    split: str = "val"  # DAVIS: ImageSets/2017/<split>.txt; YouTube-VOS: the <split>/ folder (e.g. train)
    resolution: str = "480p"  # DAVIS' JPEGImages/<resolution>, Annotations/<resolution>
    overcluster_k: int = 10  # overclustering: K = max(overcluster_k, objects + 1); 0 = clustering only (not stated)
    matching: str = "hungarian"  # hungarian (one to one, max summed IoU) | majority (many to one)
    normalize: bool = True  # L2-normalise the patch features before k-means (cosine k-means)
    kmeans_inits: int = 3  # k-means++ restarts; the lowest inertia is kept
    kmeans_iters: int = 100
    mask_size: int = 0  # masks and cluster maps are scored at mask_size^2; 0 = model.img_size
    max_frames: int = 0  # use the first max_frames frames of each video; 0 = all
    max_videos: int = 0  # 0 = every video of the split
    batch_size: int = 4  # clips per forward pass
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0

    def validate(self) -> None:
        check_choice("vos.layout", self.layout, ("davis", "ytvos"))
        check_choice("vos.matching", self.matching, ("hungarian", "majority"))
        check_choice("vos.device", self.device, ("auto", "cpu", "cuda"))
        if min(self.overcluster_k, self.mask_size, self.max_frames, self.max_videos) < 0:
            raise ConfigError("vos.overcluster_k, vos.mask_size, vos.max_frames and vos.max_videos must be >= 0")
        if min(self.kmeans_inits, self.kmeans_iters, self.batch_size) < 1:
            raise ConfigError("vos.kmeans_inits, vos.kmeans_iters and vos.batch_size must be >= 1")


@dataclass
class VosJob:
    """Everything `smile vos` needs; `model` describes the encoder where the checkpoint does not."""

    model: ModelConfig = field(default_factory=ModelConfig)
    vos: VosConfig = field(default_factory=VosConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/vos"))


@dataclass
class TadConfig:
    """Sliding-window features for temporal action localisation (OpenTAD / ActionFormer read them)."""

    list: str = ""  # the videos (any list format of docs/data.md; labels are ignored)
    data_root: str = ""
    out_dir: str = ""  # where <video id>.npy go; "" = <run.out_dir>/features
    stride: int = 4  # frames between window starts (THUMOS-14 with ActionFormer / OpenTAD: 4)
    frame_stride: int = 1  # frames between the window's frames (1: 16 consecutive frames)
    batch_size: int = 16  # windows per forward pass (and decoded together: ~batch_size * stride + 16 frames)
    dtype: str = "float32"  # float32 | float16 (the stored arrays)
    device: str = "auto"  # auto | cpu | cuda
    skip_existing: bool = True  # keep a video's .npy that is already there (restartable)

    def validate(self) -> None:
        if self.stride < 1 or self.frame_stride < 1 or self.batch_size < 1:
            raise ConfigError("tad.stride, tad.frame_stride and tad.batch_size must be >= 1")
        check_choice("tad.dtype", self.dtype, ("float32", "float16"))
        check_choice("tad.device", self.device, ("auto", "cpu", "cuda"))


@dataclass
class TadJob:
    """Everything `smile tad-features` needs; the window is model.num_frames frames (16)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    tad: TadConfig = field(default_factory=TadConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/tad"))
