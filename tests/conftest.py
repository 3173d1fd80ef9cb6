"""Shared test data."""

from __future__ import annotations

from pathlib import Path

import torch


def write_two_class_videos(root: Path, count: int, base: int, step: int, top: int, still_x: int,
                           still_value: int) -> list[str]:
    """`count` tiny mp4 files (12 x 40 x 40), alternating two classes: 0 = a bright square moving right, 1 = a dark
    still one. Returns VideoMAE list lines `path total label`."""
    from smile_video.data.video_io import write_video

    lines = []
    for i in range(count):
        label = i % 2
        frames = torch.full((12, 40, 40, 3), base + step * i, dtype=torch.uint8)
        for t in range(12):
            x = (3 * t) % 28 if label == 0 else still_x
            frames[t, top:top + 12, x:x + 12] = 230 if label == 0 else still_value
        write_video(root / f"v{i}.mp4", frames, fps=10)
        lines.append(f"{root / f'v{i}.mp4'} 12 {label}")
    return lines
