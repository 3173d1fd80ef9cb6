"""Does an encoder carry where an object is, or also which way it moves? A label-free readout (docs/fidelity.md).

On synthetic clips built as pretraining builds them (background ``cfg.data.background``, ``cfg.motion`` with one
object), the generator knows each clip's motion exactly (`MotionParams`). `motion_readout` regresses six of its
quantities from an encoder's pooled features (ridge, fit on one set of clips, held-out R^2 on another):

- **position** (``position_x``, ``position_y``: the object's mean centre over the clip, as fractions of the frame):
  where the object is, which needs no direction;
- **direction** (``displacement_x``, ``displacement_y``: last centre minus first; ``rotation``: last angle minus
  first, in half turns; ``log_scale``: log of last scale over first): which way it travels, turns and grows;
  **translation** is the mean of the two displacements alone.

A caveat on rotation and scale (docs/fidelity.md section 25 A): pretraining's angles and scales are keyframed at the
first, a random middle and the last frame, linearly in between, so a clip often turns (or grows) one way and then
back, and the net change is a pose difference between the first and last frames rather than a sense of motion the
frames show; trajectories are smoothed random walks, so the displacement is the direction of travel. A rotation R^2
near 0 (every encoder so far, and networks trained on these quantities directly) therefore does not show that
rotation is invisible; ``translation`` is the direction summary without that caveat. ``monotonic=True`` removes it:
each clip's angle and log scale then run linearly from their first-frame to their last-frame values (the same net
changes, no middle keyframe), so a clip turns and grows at constant speed, one way, as the benchmark's rotation and
scaling classes do, and ``rotation`` / ``log_scale`` are a sense of motion the frames show.

Every clip is paired with its **time reversal** (its frames in reverse order), which has the same frames, the same
mean position and the opposite direction. Features that are the same for a clip and its reversal explain none of
the direction quantities (R^2 <= 0 up to noise); so a direction R^2 above 0 means the features tell a clip from its
reversal in the way the motion says, and the position R^2 beside it says how well the same features see the object
at all.

Three poolings of the output tokens: ``mean`` (every token, what a linear probe and the classifier's head read),
``object`` (the tokens weighted by how much of them the object covers: what the object's own tokens carry) and
``time`` (each time step's mean over space, concatenated in time order). Under ``time`` a linear map can subtract
the last time step's position from the first's, so direction is readable from positions alone; under ``mean`` and
``object`` it is readable only if the tokens themselves carry it. A gap between them says where direction lives.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from ..config import PretrainJob
from ..data.normalize import normalize
from ..motion.params import MotionParams
from .diagnostics import target_r2

__all__ = ["QUANTITIES", "DIRECTIONAL", "POOLINGS", "RIDGES", "motion_quantities", "monotonic_motion", "readout_clips",
           "pooled_features", "motion_readout", "format_readout"]

QUANTITIES = ("position_x", "position_y", "displacement_x", "displacement_y", "rotation", "log_scale")
DIRECTIONAL = ("displacement_x", "displacement_y", "rotation", "log_scale")  # change sign under time reversal
POOLINGS = ("mean", "object", "time")
RIDGES = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # target_r2 penalties (x the mean feature variance), chosen on val


def motion_quantities(params: MotionParams, height: int, width: int, k: int = 0) -> Tensor:
    """(B, 6) float64: object `k`'s `QUANTITIES` in each clip of `params` (frames of `height` x `width` px).

    Positions and displacements are fractions of the frame's width (x) and height (y); rotation is the net change
    of the on-screen angle from the first frame to the last in half turns (degrees / 180); log_scale is
    log(scale_last / scale_first)."""
    if not 0 <= k < params.num_objects:
        raise ValueError(f"motion_quantities: object {k} out of range for {params.num_objects} objects")
    size = torch.tensor([width, height], dtype=torch.float64)
    c = params.centers[:, k].double() / size  # (B, T, 2)
    a = params.angles[:, k].double()  # (B, T)
    s = params.scales[:, k].double()
    mean = c.mean(dim=1)
    disp = c[:, -1] - c[:, 0]
    return torch.stack([mean[:, 0], mean[:, 1], disp[:, 0], disp[:, 1], (a[:, -1] - a[:, 0]) / 180.0,
                        torch.log(s[:, -1] / s[:, 0])], dim=1)


def monotonic_motion(params: MotionParams) -> MotionParams:
    """`params` with each object's angle linear and its scale log-linear in time from its first-frame value to its
    last-frame value (the keyframes in between dropped); centres, sizes and objects unchanged."""
    t = params.angles.shape[-1]
    ramp = torch.linspace(0.0, 1.0, t, dtype=torch.float64, device=params.angles.device)
    a, s = params.angles.double(), params.scales.double()
    angles = a[..., :1] + (a[..., -1:] - a[..., :1]) * ramp
    scales = s[..., :1] * (s[..., -1:] / s[..., :1]) ** ramp
    return replace(params, angles=angles.to(params.angles.dtype), scales=scales.to(params.scales.dtype))


def readout_clips(cfg: PretrainJob, bank: Any, clips: int, seed: int, monotonic: bool = False
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """`clips` synthetic clips of one object each, drawn from `seed` only (CPU), and their time reversals.
    `monotonic`: the motion through `monotonic_motion` (rotation and scaling at constant speed, one way).

    Returns (video (2 * clips, 3, T, H, W) uint8: clip i at row 2i, its reversal at 2i + 1;
    quantities (2 * clips, 6) float64, `motion_quantities` of each row: a reversal has the same positions and the
    negated `DIRECTIONAL` quantities;
    coverage (2 * clips, N) float64, the fraction of each token the object covers in the best frame of its tubelet
    (`ObjectAlpha.token_coverage`), tokens in (t', h', w') order)."""
    from ..motion.backgrounds import make_background
    from ..motion.composite import paste_objects
    from ..motion.params import sample_motion

    if clips < 1:
        raise ValueError(f"readout_clips: clips must be >= 1, got {clips}")
    if bank is None or len(bank) == 0:
        raise ValueError("readout_clips: needs an object bank with at least one object")
    m = cfg.model
    motion = replace(cfg.motion, num_objects=1, device="cpu")
    g = torch.Generator().manual_seed(seed)
    video = make_background(cfg.data.background, clips, m.num_frames, m.img_size, m.img_size, g).contiguous()
    params = sample_motion(clips, m.num_frames, m.img_size, m.img_size, len(bank), motion, g)
    if monotonic:
        params = monotonic_motion(params)
    video, alpha = paste_objects(video, bank, motion, params, inplace=True)
    cover = alpha.token_coverage(m.grid, m.tubelet_size, m.patch_size).double()  # (B, T', H', W')
    q = motion_quantities(params, m.img_size, m.img_size)
    sign = torch.tensor([1.0 if name not in DIRECTIONAL else -1.0 for name in QUANTITIES], dtype=torch.float64)
    both = torch.stack([video, video.flip(2)], dim=1).flatten(0, 1)  # (2B, 3, T, H, W), reversal after its clip
    # a reversal's tubelet t' holds the original's tubelet T' - 1 - t' (its frames reversed; the best frame is the same)
    cover = torch.stack([cover, cover.flip(1)], dim=1).flatten(0, 1).flatten(1)
    return both, torch.stack([q, q * sign], dim=1).flatten(0, 1), cover


@torch.no_grad()
def pooled_features(encoder: nn.Module, video: Tensor, coverage: Tensor, grid: tuple[int, int, int], chunk: int = 32
                    ) -> dict[str, Tensor]:
    """Raw clips (B, 3, T, H, W) and the object's token coverage (B, N) -> {"mean": (B, C) the mean of the encoder's
    output tokens, "object": (B, C) the mean over time steps of each step's coverage-weighted token mean (over the
    steps the object covers; the plain mean where a clip's coverage is all zero), "time": (B, T' * C) each time
    step's mean over space, concatenated in time order}, float64."""
    from .similarity import time_step_features

    if coverage.shape != (video.shape[0], grid[0] * grid[1] * grid[2]):
        raise ValueError(f"pooled_features: coverage must be (B, N) = {(video.shape[0], grid[0] * grid[1] * grid[2])}, "
                         f"got {tuple(coverage.shape)}")
    out: dict[str, list[Tensor]] = {p: [] for p in POOLINGS}
    t = grid[0]
    for s in range(0, video.shape[0], chunk):
        tokens = encoder.forward_tokens(normalize(video[s:s + chunk])).double()  # (b, N, C)
        b = tokens.shape[0]
        # object: per time step the coverage-weighted mean, then the mean over the time steps the object covers;
        # each covered step counts once, so how the covered area changes over time does not weight the time
        # positions (a clip and its reversal would otherwise differ by the weights alone)
        w = coverage[s:s + chunk].double().reshape(b, t, -1)  # (b, T', H'W')
        per_step = (tokens.reshape(b, t, -1, tokens.shape[-1]) * w[..., None]).sum(dim=2)
        area = w.sum(dim=2)  # (b, T')
        seen = (area > 0).double()
        per_step = per_step / area.clamp(min=1e-12)[..., None]
        obj = (per_step * seen[..., None]).sum(dim=1) / seen.sum(dim=1, keepdim=True).clamp(min=1)
        mean = tokens.mean(dim=1)  # (b, C)
        out["mean"].append(mean)
        out["object"].append(torch.where(seen.any(dim=1, keepdim=True), obj, mean))
        out["time"].append(time_step_features(tokens, grid).flatten(1))
    return {p: torch.cat(v) for p, v in out.items()}


def motion_readout(encoder: nn.Module, cfg: PretrainJob, bank: Any, clips: int = 512, seed: int = 4242,
                   reference: bool = True, ridges: tuple[float, ...] = RIDGES, monotonic: bool = False
                   ) -> dict[str, Any]:
    """Held-out R^2 of each of `QUANTITIES` from `encoder`'s pooled features (module docstring).

    Three disjoint sets of `clips` clips and their reversals (`readout_clips`): fit on the one drawn from
    ``seed + 1``, the ridge penalty (of `ridges`, `diagnostics.target_r2`'s scale-free penalty) chosen per quantity
    and pooling on the one from ``seed + 2``, R^2 reported on the one from `seed`. `reference`: the same for a random
    init of the encoder's architecture drawn under `seed`. `monotonic`: every set's motion at constant speed
    (`monotonic_motion`; module docstring). Deterministic in `seed`.

    Returns {"student": {pooling: {quantity: R^2}}, "random_init": the same (when `reference`), "ridge": {encoder:
    {pooling: {quantity: chosen penalty}}}, "clips": clips, "monotonic": monotonic}; each pooling also holds
    "position", "direction" and "translation", the means over the two position, the four `DIRECTIONAL` and the two
    displacement quantities.
    """
    from .features import load_frozen_encoder

    if not hasattr(encoder, "forward_tokens") or not hasattr(encoder, "cfg"):
        raise TypeError("motion_readout: needs one of our encoders (with forward_tokens and cfg), got "
                        f"{type(encoder).__name__}")
    if not ridges or min(ridges) < 0:
        raise ValueError(f"motion_readout: ridges must be a non-empty list of penalties >= 0, got {ridges}")
    m, e = cfg.model, encoder.cfg
    if (m.num_frames, m.img_size) != (e.num_frames, e.img_size):
        raise ValueError(f"motion_readout: the encoder reads {e.num_frames} frames of {e.img_size} px, but cfg.model "
                         f"draws {m.num_frames} of {m.img_size}")
    sets = {split: readout_clips(cfg, bank, clips, seed + offset, monotonic=monotonic)
            for split, offset in (("train", 1), ("val", 2), ("test", 0))}
    encoders = {"student": encoder}
    if reference:
        encoders["random_init"] = load_frozen_encoder(None, encoder.cfg, seed=seed)[0]
    out: dict[str, Any] = {"clips": clips, "monotonic": monotonic, "ridge": {}}
    for name, enc in encoders.items():
        was_training = enc.training
        enc.eval()
        f = {split: pooled_features(enc, v, cover, e.grid) for split, (v, _, cover) in sets.items()}
        enc.train(was_training)
        out[name], out["ridge"][name] = {}, {}
        for p in POOLINGS:
            r2, chosen = {}, {}
            for i, q in enumerate(QUANTITIES):
                y = {split: qs[:, i:i + 1] for split, (_, qs, _) in sets.items()}
                val = [target_r2(f["train"][p], y["train"], f["val"][p], y["val"], ridge=r) for r in ridges]
                chosen[q] = ridges[max(range(len(ridges)), key=val.__getitem__)]  # first best on a tie
                r2[q] = target_r2(f["train"][p], y["train"], f["test"][p], y["test"], ridge=chosen[q])
            r2["position"] = (r2["position_x"] + r2["position_y"]) / 2
            r2["direction"] = sum(r2[q] for q in DIRECTIONAL) / len(DIRECTIONAL)
            r2["translation"] = (r2["displacement_x"] + r2["displacement_y"]) / 2
            out[name][p], out["ridge"][name][p] = r2, chosen
    return out


def format_readout(rep: dict[str, Any]) -> str:
    """`motion_readout`'s result as a table: one row per encoder and pooling, one column per quantity."""
    cols = (*QUANTITIES, "position", "direction", "translation")
    speed = ", constant-speed rotation and scaling" if rep.get("monotonic") else ""
    lines = [f"held-out R^2 on {rep['clips']} clips and their reversals{speed} (direction: 0 = a clip and its "
             "reversal look alike)", f"{'encoder / pooling':<22}" + "".join(f"{c:>15}" for c in cols)]
    for name in ("student", "random_init"):
        for p, r2 in rep.get(name, {}).items():
            lines.append(f"{name + ' / ' + p:<22}" + "".join(f"{r2[c]:>15.3f}" for c in cols))
    return "\n".join(lines)
