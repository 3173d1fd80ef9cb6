"""Does the pretraining task use motion? Diagnostics of the masked-prediction task itself (docs/fidelity.md).

On fresh synthetic batches built exactly as training builds them (background, motion infusion, mask, normalised
teacher targets), `pretext_report` measures the student's masked-token loss

- on **object** tokens (covered by a pasted object, `masking.object_tokens`) and on **background** tokens;
- with the clip's tubelets **shuffled in time** before the student sees them (same mask, same targets): a student
  that reads the objects' motion is hurt by it, one that only copies static content is not;
- against two predictors that never look at the clip: zero (the mean of a normalised target) and the per-position
  mean of the normalised targets over a reference batch;
- against two that know something the student must infer: the *objectness oracle* (which tokens hold an object)
  and the *neighbour oracle* (the targets of the visible tokens next to a masked one, `neighbour_mean`): what a
  student that reads its visible context, without any motion, can reach;

and how informative the targets are: the energy of the normalised targets on object and background tokens, and
the share of their variance that token position alone explains. For a model with an encoder, also how much of the
targets its encoder's tokens carry with every token visible (`diagnostics.target_r2`, fit on the reference batch,
scored on the report's batch), beside a random init of the same encoder: the masked loss does not ask for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import PretrainJob
from ..data.normalize import normalize
from ..masking import make_mask, object_tokens
from ..teachers import normalize_targets

__all__ = ["PretextBatch", "make_pretext_batch", "shuffle_time", "token_errors", "neighbour_mean",
           "neighbour_oracle", "pretext_report", "checkpoint_pretext_report"]


@dataclass
class PretextBatch:
    video: Tensor  # (B, 3, T, H, W) uint8, as the student is trained on (motion infused)
    mask: Tensor  # (B, N) bool, True = masked
    targets: Tensor  # (B, N, D) normalised teacher targets, every token
    objects: Tensor  # (B, N) bool, tokens covered by an object


def make_pretext_batch(cfg: PretrainJob, teacher: nn.Module, bank: Any, batch: int, seed: int) -> PretextBatch:
    """A batch of `batch` synthetic clips built as `smile pretrain` builds them (background `cfg.data.background`,
    `cfg.motion`, `cfg.mask`, `cfg.teacher.target_norm`), drawn from `seed` only (CPU)."""
    from ..motion import infuse_motion
    from ..motion.backgrounds import make_background

    m = cfg.model
    g = torch.Generator().manual_seed(seed)
    video = make_background(cfg.data.background, batch, m.num_frames, m.img_size, m.img_size, g).contiguous()
    alpha = None
    if bank is not None and cfg.motion.enabled and cfg.motion.num_objects > 0:
        video, alpha = infuse_motion(video, bank, cfg.motion, g, inplace=True)
    mask = make_mask(cfg.mask, batch, m.grid, m.tubelet_size, m.patch_size, g, alpha=alpha)
    if alpha is None:
        objects = torch.zeros_like(mask)
    else:
        objects = object_tokens(alpha, m.grid, m.tubelet_size, m.patch_size, cfg.mask.coverage_threshold)
    targets = normalize_targets(teacher(video), cfg.teacher.target_norm)  # (B, N, D)
    return PretextBatch(video, mask, targets, objects)


def shuffle_time(video: Tensor, tubelet: int, generator: torch.Generator) -> Tensor:
    """Permute each clip's tubelets in time: (B, C, T, H, W) -> the same shape, tubelet order drawn per clip from
    `generator` and never the identity (for T / tubelet >= 2). Content within a tubelet keeps its order."""
    B, C, T, H, W = video.shape
    if T % tubelet:
        raise ValueError(f"shuffle_time: T={T} is not a multiple of the tubelet size {tubelet}")
    t = T // tubelet
    cells = video.reshape(B, C, t, tubelet, H, W)
    out = torch.empty_like(cells)
    for b in range(B):
        perm = torch.arange(t)
        while t > 1 and bool((perm == torch.arange(t)).all()):
            perm = torch.randperm(t, generator=generator)
        out[b] = cells[b, :, perm]
    return out.reshape(B, C, T, H, W)


@torch.no_grad()
def token_errors(model: nn.Module, video: Tensor, mask: Tensor, targets: Tensor, chunk: int = 16) -> Tensor:
    """Per masked token squared error averaged over channels: model (a `PretrainModel`), raw clips (B, 3, T, H, W),
    mask (B, N), all-token targets (B, N, D) -> (B, N_masked) in ascending token order."""
    errs = []
    for s in range(0, video.shape[0], chunk):
        v, mk, tg = video[s:s + chunk], mask[s:s + chunk], targets[s:s + chunk]
        pred = model(normalize(v), mk).float()  # (b, N_masked, D)
        tgt = tg[mk].reshape(pred.shape)
        errs.append((pred - tgt).pow(2).mean(dim=-1))
    return torch.cat(errs)


def neighbour_mean(targets: Tensor, mask: Tensor, grid: tuple[int, int, int]) -> tuple[Tensor, Tensor]:
    """The mean target of each token's visible neighbours in its own time step (the 3 x 3 block around it, itself
    included when visible).

    targets: (B, N, D) with N = T' H' W' in token order; mask: (B, N) bool, True = masked.
    Returns (mean (B, N, D), has (B, N) bool: at least one visible neighbour; mean is 0 where not).
    """
    B, N, D = targets.shape
    t, h, w = grid
    if t * h * w != N or mask.shape != (B, N):
        raise ValueError(f"neighbour_mean: targets {tuple(targets.shape)} and mask {tuple(mask.shape)} do not fit "
                         f"the grid {grid}")
    vis = (~mask).to(targets.dtype)  # (B, N)
    planes = (targets * vis[..., None]).view(B, t, h, w, D).permute(0, 4, 1, 2, 3).reshape(B, D * t, h, w)
    count = vis.view(B, t, h, w)
    total = F.avg_pool2d(planes, 3, stride=1, padding=1, divisor_override=1)  # (B, D t, h, w) 3 x 3 sums
    seen = F.avg_pool2d(count, 3, stride=1, padding=1, divisor_override=1).reshape(B, N)  # visible tokens summed
    total = total.view(B, D, t, h, w).permute(0, 2, 3, 4, 1).reshape(B, N, D)
    return total / seen.clamp(min=1)[..., None], seen > 0


def neighbour_oracle(ref: PretextBatch, pb: PretextBatch, pos_mean: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """Predict `pb`'s targets as ``pos_mean + a (neighbour_mean - pos_mean)``, with the one scalar `a` fit by least
    squares on `ref`'s masked tokens that have a visible neighbour (the position mean where none is visible).

    pos_mean: (1, N, D). Returns (B, N, D) predictions for every token of `pb`.
    """
    near_r, has_r = neighbour_mean(ref.targets, ref.mask, grid)
    sel = ref.mask & has_r
    x, y = (near_r - pos_mean)[sel], (ref.targets - pos_mean)[sel]
    a = (x * y).sum() / (x * x).sum().clamp(min=1e-12)
    near, has = neighbour_mean(pb.targets, pb.mask, grid)
    return torch.where(has[..., None], pos_mean + a * (near - pos_mean), pos_mean.expand_as(near))


def _split_mean(err: Tensor, mask: Tensor, objects: Tensor) -> dict[str, float]:
    """(B, N_masked) errors -> mean over all, object and background masked tokens."""
    obj = objects[mask].reshape(err.shape)
    out = {"all": err.mean().item()}
    out["object"] = err[obj].mean().item() if obj.any() else float("nan")
    out["background"] = err[~obj].mean().item() if (~obj).any() else float("nan")
    return out


@torch.no_grad()
def _encoder_target_r2(encoder: nn.Module, ref: PretextBatch, pb: PretextBatch, seed: int, chunk: int = 16
                       ) -> dict[str, float]:
    """{"student": target_r2 of `encoder`'s tokens (every token visible), "random_init": the same for a random init
    of its architecture drawn under `seed`}: fit on `ref`, scored on `pb`."""
    from .diagnostics import target_r2
    from .features import load_frozen_encoder

    def tokens(enc: nn.Module, video: Tensor) -> Tensor:  # (B, 3, T, H, W) raw -> (B, N, C)
        return torch.cat([enc.forward_tokens(normalize(video[s:s + chunk])).float()
                          for s in range(0, video.shape[0], chunk)])

    random_init = load_frozen_encoder(None, encoder.cfg, seed=seed)[0]
    out = {}
    for name, enc in (("student", encoder), ("random_init", random_init)):
        out[name] = target_r2(tokens(enc, ref.video), ref.targets, tokens(enc, pb.video), pb.targets)
    return out


@torch.no_grad()
def pretext_report(model: nn.Module, teacher: nn.Module, bank: Any, cfg: PretrainJob, clips: int = 64,
                   seed: int = 12345) -> dict[str, Any]:
    """Masked-token losses of `model` on `clips` fresh clips (see the module docstring). Deterministic in `seed`.

    Returns {"student", "shuffled", "position_mean", "objectness_oracle", "neighbour_oracle", "zero"}: each
    {"all", "object", "background"} mean squared error over masked tokens; "shuffle_penalty": shuffled - student
    per split; and "targets": {"object_energy", "background_energy" (mean squared normalised target), "position_r2"
    (share of the target variance that the per-position mean explains), "object_share" (fraction of masked tokens
    on objects)}; for a model with an encoder (a `PretrainModel`) also "encoder_target_r2": {"student",
    "random_init"} (module docstring).
    """
    was_training = model.training
    model.eval()
    ref = make_pretext_batch(cfg, teacher, bank, clips, seed + 1)
    pb = make_pretext_batch(cfg, teacher, bank, clips, seed)
    g = torch.Generator().manual_seed(seed + 2)
    student = token_errors(model, pb.video, pb.mask, pb.targets)
    shuffled = token_errors(model, shuffle_time(pb.video, cfg.model.tubelet_size, g), pb.mask, pb.targets)
    pos_mean = ref.targets.mean(dim=0, keepdim=True)  # (1, N, D)
    d = pb.targets.shape[-1]
    masked_t = pb.targets[pb.mask].reshape(clips, -1, d)
    masked_p = pos_mean.expand_as(pb.targets)[pb.mask].reshape(clips, -1, d)
    position = (masked_t - masked_p).pow(2).mean(dim=-1)
    zero = masked_t.pow(2).mean(dim=-1)
    # objectness oracle: knows which tokens are object tokens, predicts the reference batch's per-position mean of
    # object (or background) targets: what locating the objects alone, without their appearance, would buy.
    ref_obj = ref.objects[..., None].float()  # (B, N, 1)
    obj_mean = (ref.targets * ref_obj).sum(0) / ref_obj.sum(0).clamp(min=1)  # (N, D)
    bg_mean = (ref.targets * (1 - ref_obj)).sum(0) / (1 - ref_obj).sum(0).clamp(min=1)
    oracle_pred = torch.where(pb.objects[..., None], obj_mean, bg_mean)  # (B, N, D)
    oracle = (masked_t - oracle_pred[pb.mask].reshape(clips, -1, d)).pow(2).mean(dim=-1)
    near_pred = neighbour_oracle(ref, pb, pos_mean, cfg.model.grid)[pb.mask].reshape(clips, -1, d)
    near = (masked_t - near_pred).pow(2).mean(dim=-1)
    out = {"student": _split_mean(student, pb.mask, pb.objects),
           "shuffled": _split_mean(shuffled, pb.mask, pb.objects),
           "position_mean": _split_mean(position, pb.mask, pb.objects),
           "zero": _split_mean(zero, pb.mask, pb.objects),
           "objectness_oracle": _split_mean(oracle, pb.mask, pb.objects),
           "neighbour_oracle": _split_mean(near, pb.mask, pb.objects)}
    out["shuffle_penalty"] = {k: out["shuffled"][k] - out["student"][k] for k in out["student"]}
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, nn.Module) and hasattr(encoder, "forward_tokens") and hasattr(encoder, "cfg"):
        out["encoder_target_r2"] = _encoder_target_r2(encoder, ref, pb, seed)
    energy = pb.targets.pow(2).mean(dim=-1)  # (B, N)
    total_var = (pb.targets - pb.targets.mean(dim=(0, 1))).pow(2).mean()
    resid = (pb.targets - pos_mean).pow(2).mean()
    out["targets"] = {
        "object_energy": energy[pb.objects].mean().item() if pb.objects.any() else float("nan"),
        "background_energy": energy[~pb.objects].mean().item(),
        "position_r2": 1.0 - (resid / total_var).item(),
        "object_share": pb.objects[pb.mask].float().mean().item(),
    }
    model.train(was_training)
    return out


def checkpoint_pretext_report(checkpoint: str | Path, cfg: PretrainJob, clips: int = 64,
                              seed: int = 12345, readout_clips: int = 0, readout_monotonic: bool = False
                              ) -> dict[str, Any]:
    """`pretext_report` of a pretraining checkpoint (model with its decoder) under the run's config `cfg`: its
    teacher, and its object bank when motion is on. `readout_clips` > 0: also "motion_readout", the
    `motion_readout.motion_readout` of the same model's encoder on that many clips (the run's bank), at constant-speed
    rotation and scaling when `readout_monotonic`."""
    from ..checkpoint import load_model
    from ..objects import load_bank
    from ..teachers import build_teacher

    model = load_model(checkpoint, kind="pretrain", cfg=cfg.model)[0]
    motion = cfg.motion.enabled and cfg.motion.num_objects > 0
    bank = load_bank(cfg.motion.bank) if motion or readout_clips else None
    rep = pretext_report(model, build_teacher(cfg.teacher, cfg.model), bank if motion else None, cfg, clips=clips,
                         seed=seed)
    if readout_clips:
        from .motion_readout import motion_readout

        rep["motion_readout"] = motion_readout(model.encoder, cfg, bank, clips=readout_clips,
                                             monotonic=readout_monotonic)
    return rep
