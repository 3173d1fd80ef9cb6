"""Token masks for masked video modelling: random, tube and trajectory (paper 3.2 and 4.3).

Convention (docs/design.md): a mask is ``(B, N)`` bool over tokens in (t', h', w') row-major order, **True = masked**
(hidden from the encoder, predicted by the decoder). Every kind masks exactly ``num_masked(grid, ratio)`` tokens in
every sample, so kinds can be mixed in one batch. All functions are pure and draw only from the given
``torch.Generator``: the random numbers are drawn on the generator's device and moved to the output device, so a CPU
generator with a given seed gives the same mask on CPU and CUDA.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import MaskConfig
from .motion.alpha import ObjectAlpha

__all__ = ["num_masked", "random_mask", "tube_mask", "object_tokens", "trajectory_mask", "make_mask", "object_leak"]

Grid = tuple[int, int, int]


def num_masked(grid: Grid, ratio: float) -> int:
    """The one exact masked-token count of every kind: ``T' * floor(ratio * H' * W')``.

    It is the tube-mask count (a whole number of tubes), so random and trajectory masks use the same count and a
    batch may mix kinds. For ViT-B at 16 x 224 px and ratio 0.9: 8 * 176 = 1408 of 1568 tokens.
    """
    t, h, w = grid
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    return t * math.floor(ratio * h * w + 1e-9)  # epsilon: 0.8 * 40 must give 32, not 31


def _uniform(shape: tuple[int, ...], generator: torch.Generator, device: torch.device | str | None) -> Tensor:
    """U[0, 1) noise drawn on the generator's device, returned on `device`."""
    noise = torch.rand(shape, generator=generator, device=generator.device)
    return noise if device is None else noise.to(device)


def _rank(scores: Tensor) -> Tensor:
    """(B, N) scores -> (B, N) rank of each entry in its row (0 = smallest)."""
    return scores.argsort(dim=1).argsort(dim=1)


def random_mask(batch: int, grid: Grid, ratio: float, generator: torch.Generator,
                device: torch.device | str | None = None) -> Tensor:
    """Uniformly random token mask -> (B, N) bool with exactly ``num_masked(grid, ratio)`` True per row."""
    n = grid[0] * grid[1] * grid[2]
    return _rank(_uniform((batch, n), generator, device)) < num_masked(grid, ratio)  # (B, N)


def tube_mask(batch: int, grid: Grid, ratio: float, generator: torch.Generator,
              device: torch.device | str | None = None) -> Tensor:
    """VideoMAE tube mask: one random spatial mask repeated over all T' time steps -> (B, N) bool."""
    t, h, w = grid
    per_step = num_masked(grid, ratio) // t
    spatial = _rank(_uniform((batch, h * w), generator, device)) < per_step  # (B, H'W')
    return spatial[:, None, :].expand(batch, t, h * w).reshape(batch, t * h * w)  # (B, N)


def object_tokens(alpha: Tensor | ObjectAlpha, grid: Grid, tubelet: int, patch: int,
                  threshold: float = 0.1) -> Tensor:
    """Which tokens the pasted objects cover.

    alpha: (B, K, T, H, W) per-frame object coverage in [0, 1], dense or as the `ObjectAlpha` that motion infusion
    returns (consumed window by window, never materialised as float) -> (B, N) bool. The objects' union (max over K) is
    averaged over each patch of each frame; a token is an object token when, in any frame of its tubelet, that covered
    fraction exceeds `threshold`. K = 0 (no objects) gives no object tokens.
    """
    t, h, w = grid
    if isinstance(alpha, ObjectAlpha):
        B = alpha.shape[0]
        return (alpha.token_coverage(grid, tubelet, patch) > threshold).reshape(B, t * h * w)  # (B, N)
    if alpha.dim() != 5:
        raise ValueError(f"alpha must be (B, K, T, H, W), got shape {tuple(alpha.shape)}")
    B, K, T, H, W = alpha.shape
    needed = (t * tubelet, h * patch, w * patch)
    if needed != (T, H, W):
        raise ValueError(f"alpha has (T, H, W) = {(T, H, W)}, but grid {grid} with tubelet {tubelet} and patch "
                         f"{patch} needs {needed}")
    if K == 0:
        return torch.zeros(B, t * h * w, dtype=torch.bool, device=alpha.device)
    union = alpha.float().amax(dim=1)  # (B, T, H, W)
    cover = F.avg_pool2d(union.reshape(B * T, 1, H, W), patch)  # (B*T, 1, H', W') covered fraction per patch
    cover = cover.reshape(B, t, tubelet, h, w).amax(dim=2)  # (B, T', H', W'): best frame of each tubelet
    return (cover > threshold).reshape(B, t * h * w)  # (B, N)


def _pick(candidates: Tensor, fallback: Tensor, counts: Tensor, generator: torch.Generator) -> Tensor:
    """Choose counts[b] tokens of row b at random among `candidates`, then `fallback` if candidates run out.

    candidates, fallback: (B, N) bool; counts: (B,) int -> (B, N) bool.
    """
    noise = _uniform(tuple(candidates.shape), generator, candidates.device)  # (B, N) in [0, 1)
    scores = noise + 2.0 * (~candidates) + 2.0 * (~candidates & ~fallback)  # candidates < fallback < others
    return (_rank(scores) < counts[:, None]) & (candidates | fallback)


def trajectory_mask(alpha: Tensor | ObjectAlpha, grid: Grid, tubelet: int, patch: int, ratio: float,
                    generator: torch.Generator, threshold: float = 0.1, variant: str = "paper") -> Tensor:
    """Trajectory-based masking (paper 3.2, 4.3): mask along the pasted objects' paths, tube-mask the rest.

    alpha: (B, K, T, H, W) object coverage (tensor or `ObjectAlpha`) -> (B, N) bool on alpha's device, exactly
    ``num_masked(grid, ratio)`` True per row.

    ``variant="paper"``: of the object tokens O (see `object_tokens`), floor(ratio * |O|) are masked uniformly at
    random; tube masking over the non-object tokens (whole tubes in random order, the last one partly) fills the
    rest, so the total ratio is exactly `ratio` and object tokens are masked at `ratio`.

    ``variant="official"``: the released code's rule as described in issue 4: a tube mask, then every object token is
    masked, then floor((1 - ratio) * |O|) random object tokens are unmasked, then random non-object tokens are
    unmasked (or masked) until the count is exact. Object tokens end up masked at about `ratio`, and the
    rebalancing breaks some tubes.
    """
    if variant not in ("paper", "official"):
        raise ValueError(f"trajectory mask variant must be 'paper' or 'official', got {variant!r}")
    t, h, w = grid
    n = t * h * w
    total = num_masked(grid, ratio)
    obj = object_tokens(alpha, grid, tubelet, patch, threshold)  # (B, N)
    B, device = obj.shape[0], obj.device
    n_obj = obj.sum(dim=1)  # (B,)

    if variant == "paper":
        k_obj = torch.clamp(torch.floor(n_obj * ratio + 1e-9).long(), max=total)  # (B,)
        on_object = _pick(obj, torch.zeros_like(obj), k_obj, generator)  # (B, N)
        # Tube fill over non-object tokens: tubes in random order, time steps in order within a tube.
        tube_order = _rank(_uniform((B, h * w), generator, device))  # (B, H'W')
        score = (tube_order[:, None, :] * t + torch.arange(t, device=device)[None, :, None]).reshape(B, n).float()
        score = score + n * obj + n * on_object  # other object tokens only as a last resort; chosen ones never
        fill = _rank(score) < (total - k_obj)[:, None]  # (B, N)
        return on_object | fill

    mask = tube_mask(B, grid, ratio, generator, device) | obj  # (B, N)
    k_unmask = torch.floor(n_obj * (1.0 - ratio) + 1e-9).long()  # (B,)
    mask &= ~_pick(obj, torch.zeros_like(obj), k_unmask, generator)
    excess = mask.sum(dim=1) - total  # (B,)
    unmask = _pick(mask & ~obj, mask & obj, excess.clamp(min=0), generator)
    add = _pick(~mask & ~obj, ~mask & obj, (-excess).clamp(min=0), generator)
    return (mask & ~unmask) | add


def make_mask(cfg: MaskConfig, batch: int, grid: Grid, tubelet: int, patch: int, generator: torch.Generator,
              alpha: Tensor | ObjectAlpha | None = None, device: torch.device | str | None = None) -> Tensor:
    """The mask `cfg` asks for -> (B, N) bool.

    ``kind="trajectory"`` needs the object alpha ``(B, K, T, H, W)``; without it (no motion infusion, e.g. the second
    stage of progressive training) it falls back to a tube mask, which is what trajectory masking reduces to when
    there are no objects.
    """
    if cfg.kind == "random":
        return random_mask(batch, grid, cfg.ratio, generator, device)
    if cfg.kind == "tube" or (cfg.kind == "trajectory" and alpha is None):
        return tube_mask(batch, grid, cfg.ratio, generator, device)
    if cfg.kind == "trajectory":
        assert alpha is not None
        if alpha.shape[0] != batch:
            raise ValueError(f"alpha has batch {alpha.shape[0]}, expected {batch}")
        mask = trajectory_mask(alpha, grid, tubelet, patch, cfg.ratio, generator, cfg.coverage_threshold, cfg.variant)
        return mask if device is None else mask.to(device)
    raise ValueError(f"mask.kind: unknown kind {cfg.kind!r}; choose one of ['trajectory', 'tube', 'random']")


def object_leak(mask: Tensor, objects: Tensor, grid: Grid) -> dict[str, float]:
    """How much the mask's own shape says about where the objects are (docs/fidelity.md, section 13).

    mask, objects: (B, N) bool (True = masked; True = object token). A tube (one spatial position over the T' time
    steps) is *broken* when it is neither wholly masked nor wholly visible. A tube mask breaks no tube; trajectory
    masking breaks the tubes its objects cross, so a gap in a visible tube (what the decoder can see) or a visible
    token in a masked tube (what the encoder can see) points at an object without looking at the pixels.

    Returns, pooled over the batch: ``masked_base`` / ``visible_base``, the object share of the masked / visible
    tokens; ``masked_precision`` / ``visible_precision``, the object share of the masked / visible tokens in broken
    tubes (NaN when there are none); ``masked_revealed`` / ``visible_revealed``, the share of the masked / visible
    object tokens that lie in broken tubes.
    """
    t, h, w = grid
    if mask.shape != objects.shape or mask.dim() != 2 or mask.shape[1] != t * h * w:
        raise ValueError(f"mask {tuple(mask.shape)} and objects {tuple(objects.shape)} must both be (B, {t * h * w})")
    m = mask.reshape(-1, t, h * w)
    o = objects.reshape(-1, t, h * w)
    n_visible = (~m).sum(dim=1, keepdim=True)  # (B, 1, H'W')
    broken = ((n_visible > 0) & (n_visible < t)).expand_as(m)  # (B, T', H'W')

    def share(part: Tensor, whole: Tensor) -> float:
        n = int(whole.sum())
        return int(part.sum()) / n if n else float("nan")

    v = ~m
    return {"masked_base": share(m & o, m), "visible_base": share(v & o, v),
            "masked_precision": share(m & o & broken, m & broken),
            "visible_precision": share(v & o & broken, v & broken),
            "masked_revealed": share(m & o & broken, m & o), "visible_revealed": share(v & o & broken, v & o)}
