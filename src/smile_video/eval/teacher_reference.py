"""The teacher as a reference row for the probes: what a linear probe reads off the targets a student regresses.

A student distilled from a frozen image teacher can carry, at most, what the teacher's targets carry. This runs the
teacher as it runs for the targets (the first frame of each tubelet, its own resize and input normalisation; the
features before ``teacher.target_norm``), mean-pools them over positions and time like an encoder's tokens, and
probes them exactly as `probe_job.run_probe` probes an encoder: the same clips, lrs, epochs, repeats, seeds and
selection (lr and epoch on val, test reported when a test list is set).

On the embedded benchmark (docs/fidelity.md section 21 B) the embedded teacher's targets probe to 34.5 on the
appearance task's held-out objects, against 26.5 for the 3,200-step student and 13.2 for its random init; on the
motion task, near chance (16.4): pooled per-frame features hold no motion, so whatever a student gains there it
learned from the clips.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..config import ProbeJob, TeacherConfig
from ..data.normalize import IMAGENET_MEAN, IMAGENET_STD
from ..teachers import Teacher, build_teacher
from .features import clip_loader, extract_features
from .probe_job import check_lists, mean_of_repeats, probe_repeats

__all__ = ["TeacherTokens", "teacher_reference"]


class TeacherTokens(nn.Module):
    """A frozen `Teacher` as a token encoder for `features.extract_features`.

    ``features`` hands every encoder clips standardised with ImageNet statistics (`data.normalize.normalize`);
    this undoes that and returns the teacher's targets: ``(B, 3, T, H, W)`` -> ``(B, N, D)`` in token order, before
    ``teacher.target_norm`` (the per-token or per-clip normalisation the loss applies).
    """

    def __init__(self, teacher: Teacher) -> None:
        super().__init__()
        self.teacher = teacher
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.teacher((x * self.std + self.mean).clamp(0.0, 1.0))


def teacher_reference(cfg: ProbeJob, teacher: TeacherConfig | Teacher,
                      device: str | torch.device = "cpu") -> dict[str, Any]:
    """Linear probes of the teacher's mean-pooled targets with `cfg.probe`'s lists, lrs, epochs, repeats and seed.

    `teacher`: a config (built on `cfg.model`'s token grid, which sets the frames it sees and its resize) or a built
    teacher. Returns `probe_job.mean_of_repeats` of the probes (`best` the number to report: test top-1 chosen on
    val when a test list is set, else the best of val; `best_std` the probes' spread; `selected` the val point)
    and ``"repeats"``: each probe's own results.
    """
    p = cfg.probe
    check_lists(p)
    if p.head != "linear":
        raise ValueError(f"teacher_reference: probes the pooled targets linearly; probe.head={p.head!r} is not "
                         "supported")
    device = torch.device(device)
    built = teacher if isinstance(teacher, Teacher) else build_teacher(teacher, cfg.model)
    encoder = TeacherTokens(built).to(device).eval()
    sets = {}
    for split, path in (("train", p.train_list), ("val", p.val_list), ("test", p.test_list)):
        if path:
            loader = clip_loader(cfg.model, path, p.data_root, p.sampling_rate, batch_size=8)
            sets[split] = extract_features(encoder, loader, cfg.model.grid, device)  # feats (N, 1, D)
    results = probe_repeats(sets["train"], sets["val"], sets.get("test"), p, device)
    return {**mean_of_repeats(results), "repeats": [x.to_dict() for x in results]}
