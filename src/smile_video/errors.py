"""Errors that stop a job for a reason they name: the CLI prints the message and exits 1, without a traceback."""

from __future__ import annotations

__all__ = ["JobError"]


class JobError(RuntimeError):
    """A job cannot go on (too many unusable videos in a row, a non-finite loss); the message says why and what to
    do. Subclassed where it is raised (`data.dataset.TooManyBadVideos`, `engine.pretrain.TrainingError`)."""
