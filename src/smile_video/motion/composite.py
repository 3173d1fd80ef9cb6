"""Batched compositing of rotated, scaled RGBA sprites onto clips, with the per-frame alpha of every object.

One bilinear affine warp per (clip, object, frame), computed only inside a window around that object in that
frame (`windows.plan_windows`: the footprint with rotation and scale, cut to the frame). Three kernels give the
same result (up to float rounding: +-1 on a uint8 channel, exactly the same untouched pixels):

- ``c`` (CPU; default there when a C compiler is found): one fused, vectorised pass per window that solves, per
  row, the span of pixels the sprite can cover and samples, blends and writes only those (`cpu_kernel`).
- ``triton`` (CUDA; default there when triton imports and the kernel passes a one-time self-check against the
  torch backend on that device): the same fused pass as a Triton kernel (`triton_kernel`).
- ``torch`` (any device): windows of similar size grouped into buckets, each bucket one ``grid_sample`` over all
  its (clip, frame) windows of a stacked premultiplied texture, then a blend through ``unfold`` views.

The blend ``v (1 - a) + rgb a`` is rounded (not truncated) for uint8; objects are pasted in order k = 0, 1, ...
(later ones on top); pixels where every alpha is 0 are left exactly unchanged. The alpha comes back as an
`ObjectAlpha` (windows, not full frames). The geometry is stated on `MotionParams` and `windows`.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

from ..config import MotionConfig
from . import cpu_kernel
from .alpha import AlphaPiece, ObjectAlpha
from .params import REFERENCE_SIZE, MotionParams, sample_motion
from .windows import WindowPlan, object_boxes, plan_windows

__all__ = ["composite", "infuse_motion", "paste_objects", "object_boxes", "atlas_size_for", "BACKENDS",
           "resolve_backend", "triton_verified"]

BACKENDS = ("auto", "c", "triton", "torch")


def _triton_available(device: torch.device | None = None) -> bool:
    """triton imports (and, for `device`, the kernel passed its one-time self-check there)."""
    from . import triton_kernel

    return triton_kernel.available() and (device is None or triton_verified(device))


_TRITON_CHECKED: dict[str, str | None] = {}  # device -> None (agrees with the torch backend) or why not


def triton_verified(device: torch.device) -> bool:
    """Whether the Triton kernel, on `device`, gives the torch backend's result on a small random case (uint8 +-1,
    alpha +-1); checked once per device and process. ``composite(backend="auto")`` uses the kernel only then, and
    otherwise warns once and uses the torch backend, so an untested GPU or Triton version cannot corrupt training
    data silently. (Here, not in `triton_kernel`: the kernel module does not import the backends it is checked
    against.)"""
    key = str(device)
    if key not in _TRITON_CHECKED:
        _TRITON_CHECKED[key] = _triton_self_check(device)
        if _TRITON_CHECKED[key] is not None:
            import warnings

            warnings.warn(f"smile_video: the Triton compositing kernel failed its self-check on {key} "
                          f"({_TRITON_CHECKED[key]}); using the torch backend", RuntimeWarning, stacklevel=3)
    return _TRITON_CHECKED[key] is None


def _triton_self_check(device: torch.device) -> str | None:
    try:
        g = torch.Generator().manual_seed(0)
        video = torch.randint(0, 256, (2, 3, 4, 64, 64), dtype=torch.uint8, generator=g)
        atlas = torch.randint(0, 256, (3, 4, 16, 16), dtype=torch.uint8, generator=g)
        atlas[:, 3, :, :4] = 0  # transparent margins
        params = sample_motion(2, 4, 64, 64, 3, MotionConfig(trajectory="official", size_min=12, size_max=48), g)
        ref, ref_alpha = composite(video, atlas, params, backend="torch")
        out, alpha = composite(video.to(device), atlas.to(device), params, backend="triton")
        diff = int((out.cpu().int() - ref.int()).abs().max())
        adiff = int((alpha.dense(torch.uint8).cpu().int() - ref_alpha.dense(torch.uint8).int()).abs().max())
        if diff > 1 or adiff > 1:
            return f"max difference {diff} on pixels, {adiff} on alpha"
    except Exception as exc:  # noqa: BLE001 - any failure means "do not use it"
        return f"{type(exc).__name__}: {exc}"
    return None


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype = torch.uint8) -> str:
    """The kernel `composite` runs: ``auto`` is c on CPU (when the C kernel builds) and triton on CUDA (when triton
    imports), for uint8 or float32 clips; otherwise torch."""
    if backend not in BACKENDS:
        raise ValueError(f"composite: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    fused_dtype = dtype in (torch.uint8, torch.float32)
    if backend != "torch" and not fused_dtype:
        if backend == "auto":
            return "torch"
        raise ValueError(f"composite: the {backend} backend takes uint8 or float32 clips, got {dtype} "
                         "(backend='torch' takes any float)")
    if backend == "auto":
        if device.type == "cpu" and cpu_kernel.available():
            return "c"
        if device.type == "cuda" and _triton_available(device):
            return "triton"
        return "torch"
    if backend == "c" and device.type != "cpu":
        raise ValueError(f"composite: backend 'c' runs on the CPU, the video is on {device.type}")
    if backend == "c" and not cpu_kernel.available():
        raise ValueError(f"composite: backend 'c' is not available: {cpu_kernel.build_error()}")
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"  # Triton's CPU interpreter (tests)
    if backend == "triton" and ((device.type != "cuda" and not interpreted) or not _triton_available()):
        raise ValueError(f"composite: backend 'triton' needs a CUDA video and the triton package (video on "
                         f"{device.type})")
    return backend


def _texture(sprites: torch.Tensor, is_uint8: bool) -> torch.Tensor:
    """(U, 4, A, A) uint8 straight RGBA -> (1, 4, U (A + 2) + 2, A + 2) float premultiplied texture.

    Cell u's sprite sits at rows ``u (A + 2) + 2 ...`` and columns ``1 ... A``; the other texels are transparent.
    Colour is premultiplied in [0, 255] plus 0.5 for uint8 clips (so truncating the blend rounds it) or in [0, 1]
    for float clips; channel 3 is the alpha in [0, 1].
    """
    U, _, A, _ = sprites.shape
    fill = 0.5 if is_uint8 else 0.0
    tex = torch.zeros(4, U * (A + 2) + 2, A + 2, device=sprites.device)
    tex[:3] = fill
    cells = tex[:, :U * (A + 2)].view(4, U, A + 2, A + 2)[:, :, 2:, 1:A + 1]  # (4, U, A, A) view
    s = sprites.transpose(0, 1).float()  # (4, U, A, A)
    a = s[3:] / 255
    cells[3:] = a
    cells[:3] = s[:3] * a if is_uint8 else s[:3] * a / 255
    if is_uint8:
        cells[:3] += 0.5
    return tex.unsqueeze(0)


def _composite_torch(out: torch.Tensor, atlas: torch.Tensor, object_ids: torch.Tensor, plan: WindowPlan,
                     alpha: ObjectAlpha) -> None:
    """The grid_sample backend: per bucket, one sampling of all its windows from a texture of the slot's sprites."""
    B, A = out.shape[0], atlas.shape[-1]
    is_uint8 = out.dtype == torch.uint8
    device = out.device
    Hm = B * (A + 2) + 2  # texture rows
    out_cf = out.transpose(0, 1)  # (3, B, T, H, W) view: windows come out channel-first
    tex, tex_k = None, -1
    sx, sy = 2 / (A + 2), 2 / Hm
    for bk in plan.buckets:
        sl = slice(bk.start, bk.start + bk.count)
        if bk.k != tex_k:  # the slot's sprites, one cell per clip
            tex, tex_k = _texture(atlas[object_ids[:, bk.k]], is_uint8), bk.k
        n, hh, ww = bk.count, bk.h, bk.w
        b, t, x0, y0 = plan.b[sl], plan.t[sl], plan.x0[sl], plan.y0[sl]
        j = torch.arange(ww, device=device, dtype=torch.float32).view(1, 1, ww)
        i = torch.arange(hh, device=device, dtype=torch.float32).view(1, hh, 1)

        def col(x: torch.Tensor, sl: slice = sl, n: int = n) -> torch.Tensor:  # (n, 1, 1) per-window coefficient
            return x[sl].view(n, 1, 1)

        # texel (u, v) -> grid_sample's normalised coords over the texture (align_corners=False): x = (u + 1) sx - 1
        # (cell columns start at texture column 1), y = (v + b (A + 2) + 2) sy - 1, clamped to the clip's own cell
        grid = torch.empty(n, hh, ww, 2, device=device)
        torch.add((col(plan.ux) * sx) * j + (col(plan.uy) * sx) * i, (col(plan.u0) + 1) * sx - 1, out=grid[..., 0])
        off = (b * (A + 2) + 2).float().view(n, 1, 1)
        torch.add((col(plan.vx) * sy) * j + (col(plan.vy) * sy) * i, (col(plan.v0) + off) * sy - 1, out=grid[..., 1])
        lo = (off - 1) * sy - 1  # keep y inside the cell's transparent border
        torch.clamp(grid[..., 1], lo, lo + (A + 2) * sy, out=grid[..., 1])
        smp = F.grid_sample(tex, grid.view(1, n * hh, ww, 2), mode="bilinear", padding_mode="border",
                            align_corners=False).view(4, n, hh, ww)
        a = smp[3]  # (n, hh, ww)
        windows = out_cf.unfold(3, hh, 1).unfold(4, ww, 1)  # (3, B, T, H - hh + 1, W - ww + 1, hh, ww) view
        blended = torch.addcmul(smp[:3], windows[:, b, t, y0, x0], 1 - a)  # (3, n, hh, ww)
        windows[:, b, t, y0, x0] = blended.to(out.dtype)  # uint8: truncating v (1 - a) + rgb + 0.5
        q = (a * 255).round_().clamp_(min=1).mul_(a > 0).to(torch.uint8)  # nonzero wherever a > 0
        alpha.pieces.append(AlphaPiece(bk.k, b, t, y0, x0, q))


def _pieces_from_flat(plan: WindowPlan, flat: torch.Tensor, alpha: ObjectAlpha) -> None:
    """Split a flat alpha buffer (bucket after bucket, `plan.offset`) into one `AlphaPiece` per bucket (views)."""
    for bk in plan.buckets:
        sl = slice(bk.start, bk.start + bk.count)
        a = flat[bk.offset:bk.offset + bk.count * bk.h * bk.w].view(bk.count, bk.h, bk.w)
        alpha.pieces.append(AlphaPiece(bk.k, plan.b[sl], plan.t[sl], plan.y0[sl], plan.x0[sl], a))


def composite(video: torch.Tensor, atlas: torch.Tensor, params: MotionParams,
              inplace: bool = False, backend: str = "auto") -> tuple[torch.Tensor, ObjectAlpha]:
    """Paste K objects into every frame of B clips.

    Args:
        video: (B, 3, T, H, W) uint8 in [0, 255] or float in [0, 1] (raw clips).
        atlas: (N, 4, A, A) uint8 RGBA cells (`ObjectBank.atlas`), on the video's device.
        params: motion of K objects per clip (`MotionParams`), any device (moved to the video's).
        inplace: write into `video` instead of a copy.
        backend: auto | c | triton | torch (module docstring; `resolve_backend`).

    Returns:
        (augmented video: same shape, dtype and device as `video`;
         alpha: `ObjectAlpha` of shape (B, K, T, H, W), the coverage of each object in each frame, before
         occlusion by later objects; ``alpha.dense()`` is the float tensor). Pixels where every object's alpha is
         0 are left exactly unchanged.
    """
    if video.dim() != 5 or video.shape[1] != 3:
        raise ValueError(f"composite: video must be (B, 3, T, H, W), got {tuple(video.shape)}")
    if atlas.dim() != 4 or atlas.shape[1] != 4 or atlas.shape[2] != atlas.shape[3] or atlas.dtype != torch.uint8:
        raise ValueError(f"composite: atlas must be (N, 4, A, A) uint8, got {tuple(atlas.shape)} {atlas.dtype}")
    bsz, _, T, H, W = video.shape
    if params.batch != bsz or params.num_frames != T:
        raise ValueError(f"composite: params are for B={params.batch}, T={params.num_frames} but the video is "
                         f"{tuple(video.shape)}")
    device = video.device
    kernel = resolve_backend(backend, device, video.dtype)
    # the params (a few KB) and the window plan live on the host: there the plan is ~100 small CPU ops, where on a
    # GPU it would be as many kernel launches and a sync (launch-bound); the plan then travels in two copies
    host = params.to("cpu")
    K, A = params.num_objects, atlas.shape[-1]
    alpha = ObjectAlpha.zeros(bsz, K, T, H, W, device)
    if K == 0 or bsz == 0:
        return (video if inplace else video.clone()), alpha
    rules = {
        f"object_ids must index the {atlas.shape[0]} atlas rows":
            (host.object_ids >= 0).all() & (host.object_ids < atlas.shape[0]).all(),
        "sizes and scales must be > 0": (host.sizes > 0).all() & (host.scales > 0).all(),
        "centers, angles, sizes and scales must be finite":
            torch.isfinite(host.centers).all() & torch.isfinite(host.angles).all()
            & torch.isfinite(host.sizes * host.scales.amax()).all(),
    }
    for what, ok in rules.items():
        if not ok:
            raise ValueError(f"composite: {what}")
    atlas = atlas.to(device)
    # windows rounded to 8 px on the CPU (fewer pixels to visit), to 32 px on a GPU (fewer window sizes, so fewer
    # buckets and alpha pieces, hence fewer launches; the extra pixels cost little there)
    plan = plan_windows(host, A, H, W, step=32 if device.type == "cuda" else 8).to(device)
    if kernel == "torch":
        out = video if inplace else video.clone()
        _composite_torch(out, atlas, params.object_ids.to(device), plan, alpha)
        return out, alpha
    out = video if inplace else video.clone(memory_format=torch.contiguous_format)
    work = out if out.is_contiguous() else out.contiguous()  # the fused kernels index a contiguous clip
    if kernel == "c":
        flat = cpu_kernel.blend_windows(work, atlas, plan)
    else:
        from . import triton_kernel

        flat = triton_kernel.blend_windows(work, atlas, plan)
    _pieces_from_flat(plan, flat, alpha)
    if work is not out:
        out.copy_(work)
    return out, alpha


def atlas_size_for(cfg: MotionConfig, height: int, width: int, max_side: int) -> int:
    """Atlas cell side for a frame size: the largest object on screen (size_max * scale_max, scaled with the
    frame), rounded up to a multiple of 16, but never above the bank's sprite resolution."""
    largest = cfg.size_max * cfg.scale_max * min(height, width) / REFERENCE_SIZE
    return max(16, min(int(math.ceil(largest / 16)) * 16, int(math.ceil(max_side / 16)) * 16))


def _motion_device(video: torch.Tensor, cfg: MotionConfig) -> torch.device:
    """Where the objects are pasted: ``cfg.device``, or the video's own device for "auto"."""
    return video.device if cfg.device == "auto" else torch.device(cfg.device)


def infuse_motion(video: torch.Tensor, bank, cfg: MotionConfig, generator: torch.Generator,
                  inplace: bool = False) -> tuple[torch.Tensor, ObjectAlpha]:
    """Sample motion for ``cfg.num_objects`` bank objects per clip and composite them (paper section 3.3).

    video: (B, 3, T, H, W) uint8 or float [0, 1]. Runs on ``cfg.device`` ("auto": the video's device) with
    ``cfg.kernel``. `inplace`: paste into `video` itself when it is already on that device (saves a copy of the
    batch; the training step does this, its loader batch is not used again).
    Returns (augmented video, alpha: `ObjectAlpha` of shape (B, K, T, H, W)); when motion is disabled or K = 0,
    the video itself and an empty alpha.
    """
    bsz, _, T, H, W = video.shape
    video = video.to(_motion_device(video, cfg))
    if not cfg.enabled or cfg.num_objects == 0:
        return video, ObjectAlpha.zeros(bsz, cfg.num_objects, T, H, W, video.device)
    # drawn on the generator's device and left there: `composite` plans on the host anyway, so a host generator
    # (the training step's, docs/training.md) costs no kernel launches and no device-to-host sync
    params = sample_motion(bsz, T, H, W, len(bank), cfg, generator)
    return paste_objects(video, bank, cfg, params, inplace=inplace)


def paste_objects(video: torch.Tensor, bank, cfg: MotionConfig, params: MotionParams,
                  inplace: bool = False) -> tuple[torch.Tensor, ObjectAlpha]:
    """Composite the bank objects of `params` (drawn by `sample_motion`, possibly edited) onto `video`
    (B, 3, T, H, W) on ``cfg.device`` with ``cfg.kernel``, the bank's atlas at the size `cfg` implies.
    Returns (video, alpha (B, K, T, H, W)) as `composite`; `inplace` as in `infuse_motion`."""
    _, _, _, H, W = video.shape
    video = video.to(_motion_device(video, cfg))
    atlas = bank.atlas(atlas_size_for(cfg, H, W, bank.max_side), video.device)
    return composite(video, atlas, params, inplace=inplace, backend=cfg.kernel)
