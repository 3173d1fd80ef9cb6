"""Synthetic object motion (paper section 3.3): trajectories, keyframed transforms, compositing, backgrounds."""

from .alpha import AlphaPiece, ObjectAlpha
from .composite import BACKENDS, atlas_size_for, composite, infuse_motion, paste_objects, resolve_backend
from .keyframes import interpolate_keyframes, sample_keyframe_indices, sample_keyframes
from .params import MotionParams, sample_motion
from .trajectory import gaussian_smooth, official_trajectory, paper_trajectory, sample_trajectories
from .windows import WindowPlan, object_boxes, plan_windows

__all__ = ["ObjectAlpha", "AlphaPiece", "MotionParams", "sample_motion", "composite", "infuse_motion",
           "paste_objects", "object_boxes", "BACKENDS", "resolve_backend", "WindowPlan", "plan_windows",
           "atlas_size_for",
           "sample_keyframes", "sample_keyframe_indices", "interpolate_keyframes", "gaussian_smooth",
           "paper_trajectory", "official_trajectory", "sample_trajectories"]
