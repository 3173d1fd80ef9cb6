"""Synthetic object motion (paper section 3.3): trajectories, keyframed transforms, compositing, backgrounds."""

from .alpha import AlphaPiece, ObjectAlpha
from .composite import atlas_size_for, composite, infuse_motion, object_boxes
from .keyframes import interpolate_keyframes, sample_keyframe_indices, sample_keyframes
from .params import MotionParams, sample_motion
from .trajectory import gaussian_smooth, official_trajectory, paper_trajectory, sample_trajectories

__all__ = ["ObjectAlpha", "AlphaPiece", "MotionParams", "sample_motion", "composite", "infuse_motion", "object_boxes",
           "atlas_size_for",
           "sample_keyframes", "sample_keyframe_indices", "interpolate_keyframes", "gaussian_smooth",
           "paper_trajectory", "official_trajectory", "sample_trajectories"]
