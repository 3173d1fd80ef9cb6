"""How the pretraining engine feeds the device: DataLoader worker count, pinned memory, prefetch, worker start method.

Decoding video is the expensive part of a step's input (docs/benchmarks.md: tens of ms per clip per core), so when
clips come from videos every CPU core but one per rank decodes (`data.num_workers=-1`, the default), capped at 10
(VideoMAE's setting; more rarely pays and multiplies memory). Each worker builds whole micro-batches and keeps
`data.prefetch_factor` of them ready, so the next batches are decoded while the step runs. The purely synthetic
sources (noise / black / image backgrounds) are cheap and generated in the training process (0 workers).

Pinned memory makes the host-to-GPU copy asynchronous (`non_blocking=True` in the engine). With
`data.decode_device=cuda` the frames are already on the GPU: no pinning, and workers are started with ``spawn``
(CUDA cannot be used in forked processes).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..config import DataConfig

__all__ = ["MAX_AUTO_WORKERS", "cpus_per_rank", "decodes_video", "resolve_workers", "loader_options"]

MAX_AUTO_WORKERS = 10


def cpus_per_rank(local_world_size: int | None = None) -> int:
    """CPU cores this process may use, shared evenly by the ranks of this node (LOCAL_WORLD_SIZE under torchrun)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    local = local_world_size or int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, cpus // max(1, local))


def decodes_video(data: DataConfig) -> bool:
    """Whether the clip source decodes video files (natural clips, or frame / video backgrounds)."""
    return bool(data.train_list) and (data.source == "video" or data.background in ("frame", "video"))


def resolve_workers(data: DataConfig, cpus: int | None = None) -> int:
    """`data.num_workers`, with -1 (auto) resolved: ``min(cores per rank - 1, 10)`` (at least 1) when video is
    decoded, else 0."""
    if data.num_workers >= 0:
        return data.num_workers
    if not decodes_video(data):
        return 0
    cpus = cpus_per_rank() if cpus is None else cpus
    return max(1, min(cpus - 1, MAX_AUTO_WORKERS))


def loader_options(data: DataConfig, device: torch.device, cpus: int | None = None) -> dict[str, Any]:
    """Keyword arguments for `torch.utils.data.DataLoader` (besides dataset, sampler and collate_fn)."""
    if data.decode_device == "cuda" and not torch.cuda.is_available():
        raise ValueError("data.decode_device=cuda: no CUDA device is available here; use data.decode_device=cpu")
    workers = resolve_workers(data, cpus)
    on_gpu_already = data.decode_device == "cuda"
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": device.type == "cuda" and not on_gpu_already}
    if workers:
        options["prefetch_factor"] = data.prefetch_factor
        if on_gpu_already:
            options["multiprocessing_context"] = "spawn"
    return options
