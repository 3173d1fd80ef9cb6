"""Synthetic object motion (paper section 3.3): trajectories, keyframed transforms, compositing, backgrounds."""
