"""The evaluation jobs' config sections: linear probe / kNN (`ProbeConfig`) and full finetuning (`FinetuneConfig`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .checks import ConfigError, check_choice, check_range
from .sections import ModelConfig, RunConfig, TrainConfig

__all__ = ["ProbeConfig", "FinetuneConfig", "ProbeJob", "KnnJob", "FinetuneJob"]


def check_list_files(section: str, cfg: object) -> None:
    """Before any work: `<section>.train_list` and `.val_list` are set, and every list that is set (test included)
    exists; the error names the key."""
    from pathlib import Path

    for key in ("train_list", "val_list"):
        if not getattr(cfg, key):
            raise ValueError(f"{section}.{key} is not set ({section}.{key}=PATH)")
    for key in ("train_list", "val_list", "test_list"):
        path = getattr(cfg, key)
        if path and not Path(path).exists():
            raise FileNotFoundError(f"{section}.{key}={path!r} does not exist")


def check_test_list(section: str, test_list: str, train_list: str, val_list: str) -> None:
    """A test list must be a list of its own: not the train or val list (reporting on the clips that chose or
    trained the model is what it is there to avoid)."""
    if not test_list:
        return
    for key, other in (("train_list", train_list), ("val_list", val_list)):
        if other and os.path.normpath(other) == os.path.normpath(test_list):
            raise ConfigError(f"{section}.test_list is {section}.{key} ({test_list!r}); give a held-out list, or "
                              f"leave {section}.test_list empty")


@dataclass
class ProbeConfig:
    """Linear probing (paper Table 16): frozen encoder, cached features, a linear head."""

    train_list: str = ""
    val_list: str = ""
    # held-out list: when set, the probe's lr and epoch are chosen on val and its result reported on test, and kNN
    # reports on test; "" = the best of val (docs/evaluation.md)
    test_list: str = ""
    data_root: str = ""
    epochs: int = 30  # Table 16: K400 30, UCF 100, HMDB 100, SSv2 50, GYM 100, EPIC 100
    batch_size: int = 128  # Table 16
    lrs: list[float] = field(default_factory=lambda: [1e-3])  # Table 16 base lr; several are trained together
    weight_decay: float = 0.05  # Table 16
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Table 16
    batchnorm: bool = True  # BatchNorm (no affine) before the head
    flip: bool = True  # Table 16: no for SSv2, yes otherwise
    sampling_rate: int = 4
    knn_k: int = 20
    # mean: the tokens' mean (VideoMAE / the paper); time: per-time-step means concatenated (keeps temporal order)
    pooling: str = "mean"
    # linear: a linear head on the pooled features (Table 16); attentive: V-JEPA's attentive probe on every output
    # token (a learned query cross-attends over them, then a linear head; probe.pooling is then unused)
    head: str = "linear"
    attentive_heads: int = 4  # attention heads of the attentive probe's query (must divide the feature dim)
    knn_vote: str = "weighted"  # weighted (exp(sim / T), T = knn_temperature) | majority
    knn_temperature: float = 0.07
    # kNN on features minus the training features' mean (SimpleShot's CL2N); false: DINO's plain cosine, which turns
    # how clips differ along a vector they all share into a length and ignores it (docs/fidelity.md, section 20)
    knn_centre: bool = True
    test_clips: int = 1  # views per video whose features are averaged (train and val lists)
    test_crops: int = 1
    extract_batch_size: int = 8  # clips per forward pass during feature extraction
    num_workers: int = 0
    cache_dir: str = ""  # feature cache; "" = <run.out_dir>/features
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0
    # Independent probes on the same features (initial weights and batch order drawn afresh; the encoder, random init
    # included, is the same): each chooses its own (lr, epoch) on val and the reported result is their mean, with its
    # spread. Repeat 0 is the single probe of repeats=1 (docs/evaluation.md).
    repeats: int = 1

    def validate(self) -> None:
        if self.repeats < 1:
            raise ConfigError(f"probe.repeats must be >= 1, got {self.repeats}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lrs:
            raise ConfigError("probe.epochs and probe.batch_size must be >= 1 and probe.lrs non-empty")
        if any(lr <= 0 for lr in self.lrs) or len(self.betas) != 2:
            raise ConfigError(f"probe.lrs must be > 0 and probe.betas two values, got {self.lrs}, {self.betas}")
        check_choice("probe.knn_vote", self.knn_vote, ("weighted", "majority"))
        check_choice("probe.pooling", self.pooling, ("mean", "time"))
        check_choice("probe.head", self.head, ("linear", "attentive"))
        if self.attentive_heads < 1:
            raise ConfigError(f"probe.attentive_heads must be >= 1, got {self.attentive_heads}")
        check_choice("probe.device", self.device, ("auto", "cpu", "cuda"))
        if min(self.knn_k, self.test_clips, self.test_crops, self.extract_batch_size) < 1 or self.num_workers < 0:
            raise ConfigError("probe.knn_k, probe.test_clips, probe.test_crops and probe.extract_batch_size must be "
                              ">= 1, probe.num_workers >= 0")
        check_test_list("probe", self.test_list, self.train_list, self.val_list)


@dataclass
class FinetuneConfig:
    """Full finetuning with the VideoMAE recipe (paper Table 17)."""

    train_list: str = ""
    val_list: str = ""
    test_list: str = ""  # held-out list: when set, the final epoch is also evaluated on it (nothing is chosen on it)
    data_root: str = ""
    # classification (one label a video) | multilabel (Charades: sigmoid / BCE head, mAP) | counting (UCFRep:
    # regression head, normalised MAE); the list formats are in docs/data.md (eval/finetune_tasks.py)
    task: str = "classification"
    num_classes: int = 0  # the class list's size; 0 = the largest label in the lists + 1 (labels >= it are errors)
    epochs: int = 100  # Table 17: SSv2 40, K400 100, SEVERE 100
    # LP-FT (Kumar et al., ICLR 2022): epochs that train only fc_norm and the head, the encoder frozen and in eval
    # mode, before the `epochs` of full finetuning (which then start from that head, with their own warmup and
    # schedule). 0 = plain finetuning, as Table 17. Its AdamW runs at the same lr, cosine over these epochs.
    head_epochs: int = 0
    # Centre the encoder's output before the first step: the training clips' mean pooled feature (one pass, centre
    # clips, no augmentation) is subtracted from the last block's MLP output bias, so every output token moves by it
    # and fc_norm reads features centred on the training set (exact in eval mode, in expectation under drop path).
    # For encoders whose tokens share one large vector (docs/fidelity.md section 19). false = as Table 17.
    centre_output: bool = False
    batch_size: int = 16  # Table 17: SSv2 32, K400 16, SEVERE 16
    lr: float = 1e-3  # base learning rate (Table 17); the optimizer uses lr * batch_size / 256
    weight_decay: float = 0.05  # Table 17
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Table 17
    layer_decay: float = 0.75  # Table 17
    warmup_epochs: float = 5.0  # Table 17
    drop_path: float = 0.1  # Table 17
    # Table 17 "RandAug (9, 0.5)" is timm's rand-m9-mstd0.5 (MAE / VideoMAE): magnitude 9 of 10, magnitude std 0.5,
    # 2 operations per clip (timm's default). randaug_n = 0 switches RandAugment off.
    randaug_n: int = 2
    randaug_m: float = 9.0
    randaug_mstd: float = 0.5
    # Random erasing: not in Table 17; VideoMAE's finetuning default (--reprob 0.25 --remode pixel --recount 1).
    # Probability per clip; 0 switches it off.
    reprob: float = 0.25
    label_smoothing: float = 0.1  # Table 17
    mixup: float = 0.8  # Table 17
    cutmix: float = 1.0  # Table 17
    flip: bool = True  # Table 17: no for SSv2
    sampling_rate: int = 4
    test_clips: int = 5  # multi-view testing (VideoMAE: 5 x 3 for K400, 2 x 3 for SSv2)
    test_crops: int = 3
    min_lr: float = 1e-6  # VideoMAE's cosine floor
    eval_every: int = 0  # epochs between multi-view evaluations; 0 = only after the last epoch
    num_workers: int = 0
    # Keep the training videos' decoded frames in memory and decode each file once (per loader process): for small
    # lists over many epochs (the embedded benchmark). Memory: every frame of every file, uint8.
    cache_frames: bool = False
    seed: int = 0
    keep_checkpoints: int = 2  # per-epoch checkpoints kept in <run>/checkpoints (the newest ones)

    def validate(self) -> None:
        check_range("finetune.layer_decay", self.layer_decay, 0.0, 1.0)
        check_range("finetune.reprob", self.reprob, 0.0, 1.0)
        check_range("finetune.drop_path", self.drop_path, 0.0, 1.0)
        check_range("finetune.label_smoothing", self.label_smoothing, 0.0, 1.0, inclusive_high=False)
        check_range("finetune.randaug_m", self.randaug_m, 0.0, 10.0)
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("finetune.epochs and finetune.batch_size must be >= 1")
        if self.head_epochs < 0:
            raise ConfigError(f"finetune.head_epochs must be >= 0 (0: no head-only epochs), got {self.head_epochs}")
        if self.lr <= 0 or len(self.betas) != 2 or self.mixup < 0 or self.cutmix < 0 or self.randaug_n < 0:
            raise ConfigError("finetune.lr must be > 0, finetune.betas two values, finetune.mixup / cutmix / "
                              "randaug_n >= 0")
        if min(self.test_clips, self.test_crops) < 1 or self.eval_every < 0 or self.num_workers < 0:
            raise ConfigError("finetune.test_clips and test_crops must be >= 1; eval_every and num_workers >= 0")
        check_test_list("finetune", self.test_list, self.train_list, self.val_list)
        check_choice("finetune.task", self.task, ("classification", "multilabel", "counting"))
        if self.num_classes < 0:
            raise ConfigError(f"finetune.num_classes must be >= 0 (0: from the lists), got {self.num_classes}")
        if self.task == "counting" and (self.mixup > 0 or self.cutmix > 0):
            raise ConfigError("finetune.task=counting: mixing two clips does not mix their counts; set "
                              "finetune.mixup=0 finetune.cutmix=0")
        if self.keep_checkpoints < 1:
            raise ConfigError(f"finetune.keep_checkpoints must be >= 1 (the newest checkpoints kept), got "
                              f"{self.keep_checkpoints}")


@dataclass
class ProbeJob:
    """Everything `smile probe` / `smile knn` need; `model` describes the encoder when the checkpoint does not."""

    model: ModelConfig = field(default_factory=ModelConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/probe"))


@dataclass
class KnnJob(ProbeJob):
    """`smile knn`: the probe's sections, its own run directory by default (a run directory holds one run)."""

    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/knn"))


@dataclass
class FinetuneJob:
    """Everything `smile finetune` needs."""

    model: ModelConfig = field(default_factory=lambda: ModelConfig(drop_path=0.1))
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(precision="auto"))
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/finetune"))
