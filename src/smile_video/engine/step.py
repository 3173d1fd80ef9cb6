"""One micro-step of SMILE pretraining: infuse motion, mask, compute targets, predict, backpropagate."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainJob
from ..data.normalize import normalize
from ..masking import make_mask, num_masked
from ..models.vit import gather_tokens, mask_indices
from ..teachers import normalize_targets


class MicroStep:
    """Forward and backward of one micro-batch; the loss is divided by `accum_steps` before backward.

    Args:
        net: the student (possibly wrapped by DDP or torch.compile): ``net(x, mask, num_masked=n) -> (B, N_masked,
            D)`` (n = ``masking.num_masked(grid, ratio)``, every row's count); with ``teacher.visible_weight > 0``
            ``net(x, mask, True, num_masked=n) -> (masked, visible (B, N_vis, D))``, and the loss
            adds ``visible_weight`` times the visible tokens' MSE to their own targets.
        teacher: frozen, ``teacher(raw clip) -> (B, N, D)``.
        bank: the object bank, or None when no clip is augmented.
    """

    def __init__(self, cfg: PretrainJob, net: nn.Module, teacher: nn.Module, bank, device: torch.device,
                 amp_dtype: torch.dtype | None, scaler: torch.amp.GradScaler, accum_steps: int = 1) -> None:
        self.cfg, self.net, self.teacher, self.bank = cfg, net, teacher, bank
        self.device, self.amp_dtype, self.scaler, self.accum_steps = device, amp_dtype, scaler, accum_steps

    def augment(self, video: torch.Tensor, mode: str, gen: torch.Generator) -> tuple[torch.Tensor, object]:
        """Raw clips (B, 3, T, H, W) -> (clips as trained on, object alpha: `ObjectAlpha` (B, K, T, H, W) or None)."""
        if mode == "original" or self.bank is None:
            return video, None
        from ..motion import ObjectAlpha, infuse_motion

        gen = motion_generator(gen)
        # in place: the loader's batch is not used after this step (saves a copy of every clip)
        if mode == "mixed":  # first half original, second half augmented
            half = video.shape[0] // 2
            aug, alpha = infuse_motion(video[half:], self.bank, self.cfg.motion, gen, inplace=True)
            aug, alpha = aug.to(self.device), alpha.to(self.device)
            none = ObjectAlpha.zeros(half, *alpha.shape[1:], device=alpha.device)
            return torch.cat([video[:half], aug]), ObjectAlpha.cat([none, alpha])
        aug, alpha = infuse_motion(video, self.bank, self.cfg.motion, gen, inplace=True)
        return aug.to(self.device), alpha.to(self.device)

    def __call__(self, video: torch.Tensor, mode: str, seed: int) -> torch.Tensor:
        cfg, m = self.cfg, self.cfg.model
        torch.manual_seed(seed)  # drop path and any other global draw of this slot
        gen = torch.Generator(device=self.device).manual_seed(seed)
        b = video.shape[0]
        with _phase("augment"):
            video, alpha = self.augment(video, mode, gen)
        with _phase("mask"):
            mask = make_mask(cfg.mask, b, m.grid, m.tubelet_size, m.patch_size, gen, alpha=alpha,
                             device=self.device)
        weight = cfg.teacher.visible_weight
        # every mask kind masks exactly this many tokens a row (masking.py): static shapes, no host sync
        count = num_masked(m.grid, cfg.mask.ratio)
        vis_idx, masked_idx = mask_indices(mask, count)  # (b, N_vis), (b, N_masked), ascending token index
        with _phase("teacher"):
            every = normalize_targets(self.teacher(video), cfg.teacher.target_norm)  # (b, N, D)
            targets = gather_tokens(every, masked_idx)  # (b, N_masked, D)
        with _phase("student"):
            x = normalize(video)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                # (b, N_masked, D) and, with teacher.visible_weight, the visible tokens' own (b, N_vis, D)
                pred, own = (self.net(x, mask, True, num_masked=count) if weight > 0
                             else (self.net(x, mask, num_masked=count), None))
            loss = F.mse_loss(pred.float(), targets.float())
            if own is not None:  # the paper's masked loss + the visible tokens' own (teacher.visible_weight)
                own_targets = gather_tokens(every, vis_idx)  # (b, N_vis, D)
                loss = loss + weight * F.mse_loss(own.float(), own_targets.float())
        with _phase("backward"):
            self.scaler.scale(loss / self.accum_steps).backward()
        return loss.detach()


def motion_generator(step_gen: torch.Generator) -> torch.Generator:
    """The generator a step's motion is drawn from: always on the host. On the CPU it is the step's own generator
    (the mask then continues its stream); on a GPU a host generator with the step's seed, so that sampling the
    trajectories, keyframes and sizes costs no kernel launches and `composite`'s host-side plan no device-to-host
    sync (the mask is still drawn from the step's device generator). Deterministic per (seed, step, slot) either
    way; where the compositing runs (``motion.device``) does not change what is drawn."""
    if step_gen.device.type == "cpu":
        return step_gen
    return torch.Generator().manual_seed(step_gen.initial_seed())


def _phase(name: str) -> torch.profiler.record_function:
    """A named range of the step (``smile/<name>``) for `torch.profiler` (benchmarks/train_step.py --profile)."""
    return torch.profiler.record_function(f"smile/{name}")
