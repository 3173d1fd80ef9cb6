"""Teachers: frozen image encoders (CLIP, DINO, DINOv2, MAE, the embedded EfficientNet-Lite0) and pixel targets.

``build_teacher(cfg.teacher, cfg.model)`` gives a ``Teacher``: raw clip ``(B, 3, T, H, W)`` -> targets
``(B, N, D)`` in the student's ``(t', h', w')`` token order; ``normalize_targets`` standardises them for the loss.
See docs/teachers.md.
"""

from __future__ import annotations

from smile_video.config import ModelConfig, TeacherConfig
from smile_video.teachers.base import ImageTeacher, Teacher, first_frames
from smile_video.teachers.clip import build_clip_teacher
from smile_video.teachers.embedded import EfficientNetTeacher
from smile_video.teachers.pixel import PixelTeacher
from smile_video.teachers.targets import normalize_targets
from smile_video.teachers.vit_teachers import ViTTeacher, build_vit_teacher

__all__ = [
    "Teacher",
    "ImageTeacher",
    "ViTTeacher",
    "EfficientNetTeacher",
    "PixelTeacher",
    "build_teacher",
    "normalize_targets",
    "first_frames",
]


def build_teacher(cfg: TeacherConfig, model: ModelConfig) -> Teacher:
    """The teacher ``cfg`` describes, producing targets on ``model``'s token grid (frozen, eval mode)."""
    grid, tubelet = model.grid, model.tubelet_size
    if cfg.kind == "pixel":
        if cfg.frames != "first":
            raise ValueError("teacher.frames applies to image teachers: pixel targets already cover every frame of "
                             "the tubelet; leave teacher.frames=first with teacher.kind=pixel")
        return PixelTeacher(grid, tubelet, model.patch_size)
    teacher = _image_teacher(cfg, grid, tubelet)
    return teacher.use_every_frame() if cfg.frames == "all" else teacher


def _image_teacher(cfg: TeacherConfig, grid: tuple[int, int, int], tubelet: int) -> ImageTeacher:
    common = dict(resize=cfg.resize, dtype=cfg.dtype, frame_chunk=cfg.frame_chunk)
    if cfg.kind == "embedded":
        if cfg.layer != -1 or cfg.projection or cfg.arch:
            raise ValueError("teacher.kind=embedded uses the fixed stride-16 EfficientNet-Lite0 features: "
                             "teacher.layer, teacher.projection and teacher.arch must stay unset")
        return EfficientNetTeacher(grid, tubelet, weights=cfg.weights, input_norm=cfg.input_norm, **common)
    if cfg.kind == "clip":
        return build_clip_teacher(cfg.weights, grid, tubelet, layer=cfg.layer, projection=cfg.projection,
                                  input_norm=cfg.input_norm, act=cfg.clip_act, **common)
    if cfg.kind in ("dino", "dinov2", "mae"):
        if cfg.projection:
            raise ValueError(f"teacher.projection applies to CLIP only, not teacher.kind={cfg.kind}")
        if cfg.input_norm != "native":
            raise ValueError(f"teacher.input_norm={cfg.input_norm}: {cfg.kind} already uses ImageNet statistics")
        return build_vit_teacher(cfg.kind, cfg.weights, cfg.arch, grid, tubelet, layer=cfg.layer, **common)
    raise ValueError(f"teacher.kind: {cfg.kind!r} is not one of ['embedded', 'clip', 'dino', 'dinov2', 'mae', "
                     "'pixel']")
