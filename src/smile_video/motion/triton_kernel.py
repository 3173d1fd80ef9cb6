"""Fused CUDA compositing (Triton): sample, blend and write every window of a `WindowPlan`, one launch per slot.

The same result as the torch and C backends (`composite`): bilinear sampling of the straight-alpha uint8 atlas
with premultiplied accumulation, ``v (1 - a) + rgb a`` rounded for uint8 clips, pixels outside every object left
exactly unchanged, the uint8 alpha of every window written to one flat buffer (`WindowPlan.offset`).

Design. One launch per object slot k (paste order: slot k + 1 starts after slot k is done on the stream; a slot's
windows are distinct frames, so its programs never race). Grid (windows of the slot, `split`): program (e, s) walks
window e's h * w pixels, flattened row-major (``i = p // w``, ``j = p % w``), in chunks of `BLOCK` = 512 pixels
(4 warps), chunks s, s + split, ..., so narrow and wide windows alike keep every lane busy. `split` (at most the
chunk count of the slot's largest window; a smaller window's surplus programs exit at once) comes from the host-side
bucket sizes, aiming at ~8k programs per launch: no host sync, no Python loop over windows, K launches in all.
Per pixel: the texel coordinates from the window's affine map; a test against the cell's `cell_bounds` (the u and
v ranges and, when given, the u + v and u - v ones: outside them nothing is loaded or blended); four masked gathers
of one int32 each (an RGBA texel, unpacked with shifts; texels outside the cell are masked to transparent); the
alpha byte, always stored; the blend of the three channels, loaded and stored only where the alpha is non-zero.
Per-pixel index math is int32; the per-window base pointers are int64.

`available()` is true when triton imports and CUDA is there, or in Triton's interpreter (``TRITON_INTERPRET=1``,
CPU tensors; used by the tests). This module imports only `windows`; the check that the kernel agrees with the torch
backend on a device before ``backend="auto"`` uses it lives with the backends, in `composite.triton_verified`.
"""

from __future__ import annotations

import contextlib
import os

import torch

from .windows import WindowPlan, texel_cells

try:
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - any import failure means "not available"
    triton = None

__all__ = ["available", "blend_windows"]

BLOCK = 512  # pixels per chunk (4 warps x 32 lanes x 4)
NUM_WARPS = 4
_TARGET_PROGRAMS = 8192  # programs per launch: a few waves on an H100 (132 SMs x 16 programs of 4 warps)


def available() -> bool:
    """Whether `blend_windows` can run: triton imports, and CUDA is available or ``TRITON_INTERPRET=1``."""
    return triton is not None and (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1")


if triton is not None:

    @triton.jit
    def _blend_kernel(video, texels, alpha, b_, t_, x0_, y0_, h_, w_, sp_, u0_, ux_, uy_, v0_, vx_, vy_, off_,
                      bounds, start, T, H, W, plane, A, NB: tl.constexpr, IS_UINT8: tl.constexpr,
                      BLOCK: tl.constexpr):
        """video: (B, 3, T, H, W) uint8 / float32, in place; texels: (M, A, A) int32 RGBA; alpha: flat uint8;
        b_ .. off_: the plan's (n,) arrays (sp_: rows of texels); bounds: (M, NB) float32 `cell_bounds` (NB = 4:
        u, v ranges; NB = 8: also u + v and u - v); plane = T H W."""
        e = start + tl.program_id(0)  # the window
        split = tl.num_programs(1)
        h = tl.load(h_ + e).to(tl.int32)
        w = tl.load(w_ + e).to(tl.int32)
        area = h * w
        b = tl.load(b_ + e)  # int64: the base pointers below are int64
        t = tl.load(t_ + e)
        x0 = tl.load(x0_ + e)
        y0 = tl.load(y0_ + e)
        sp = tl.load(sp_ + e)
        u0, ux, uy = tl.load(u0_ + e), tl.load(ux_ + e), tl.load(uy_ + e)
        v0, vx, vy = tl.load(v0_ + e), tl.load(vx_ + e), tl.load(vy_ + e)
        bnd = bounds + sp * NB
        ulo, uhi, vlo, vhi = tl.load(bnd), tl.load(bnd + 1), tl.load(bnd + 2), tl.load(bnd + 3)
        corner = video + ((b * 3 * T + t) * H + y0) * W + x0  # channel 0, the window's top-left pixel
        cell = texels + sp * A * A
        out = alpha + tl.load(off_ + e)
        lanes = tl.arange(0, BLOCK)
        for p0 in range(tl.program_id(1) * BLOCK, area, split * BLOCK):
            p = p0 + lanes  # (BLOCK,) int32 flat pixel index in the window
            m = p < area
            i = p // w
            j = p - i * w
            u = u0 + ux * j.to(tl.float32) + uy * i.to(tl.float32)
            v = v0 + vx * j.to(tl.float32) + vy * i.to(tl.float32)
            inside = m & (u > ulo) & (u < uhi) & (v > vlo) & (v < vhi)  # else the sample is 0 (and NaN-safe)
            if NB >= 8:  # the octagon: diagonal bounds cut the corners of round sprites
                inside = inside & (u + v > tl.load(bnd + 4)) & (u + v < tl.load(bnd + 5))
                inside = inside & (u - v > tl.load(bnd + 6)) & (u - v < tl.load(bnd + 7))
            fu = u - 0.5
            fv = v - 0.5
            flu = tl.floor(fu)
            flv = tl.floor(fv)
            du = fu - flu
            dv = fv - flv
            iu = flu.to(tl.int32)
            iv = flv.to(tl.int32)
            u_0 = (iu >= 0) & (iu < A)  # texel columns iu, iu + 1 and rows iv, iv + 1 inside the cell
            u_1 = (iu >= -1) & (iu < A - 1)
            v_0 = inside & (iv >= 0) & (iv < A)
            v_1 = inside & (iv >= -1) & (iv < A - 1)
            tex = cell + iv * A + iu
            t00 = tl.load(tex, mask=v_0 & u_0, other=0)  # int32 R | G << 8 | B << 16 | A << 24
            t01 = tl.load(tex + 1, mask=v_0 & u_1, other=0)
            t10 = tl.load(tex + A, mask=v_1 & u_0, other=0)
            t11 = tl.load(tex + A + 1, mask=v_1 & u_1, other=0)
            w00 = (1.0 - du) * (1.0 - dv) * ((t00 >> 24) & 255).to(tl.float32)  # bilinear weight x texel alpha
            w01 = du * (1.0 - dv) * ((t01 >> 24) & 255).to(tl.float32)
            w10 = (1.0 - du) * dv * ((t10 >> 24) & 255).to(tl.float32)
            w11 = du * dv * ((t11 >> 24) & 255).to(tl.float32)
            sa = w00 + w01 + w10 + w11  # (BLOCK,) alpha in [0, 255]
            q = tl.minimum(tl.maximum((sa + 0.5).to(tl.int32), 1), 255)
            q = tl.where(sa > 0.0, q, 0)
            tl.store(out + p, q.to(tl.uint8), mask=m)  # every byte of the window
            covered = inside & (sa > 0.0)
            keep = 1.0 - sa / 255.0
            pix = corner + (i * W + j)
            for c in tl.static_range(3):
                rgb = (w00 * ((t00 >> (8 * c)) & 255).to(tl.float32) + w01 * ((t01 >> (8 * c)) & 255).to(tl.float32)
                       + w10 * ((t10 >> (8 * c)) & 255).to(tl.float32)
                       + w11 * ((t11 >> (8 * c)) & 255).to(tl.float32))  # premultiplied, in [0, 65025]
                ptr = pix + c * plane
                old = tl.load(ptr, mask=covered, other=0).to(tl.float32)
                if IS_UINT8:
                    new = tl.minimum(old * keep + rgb / 255.0 + 0.5, 255.0).to(tl.int32).to(tl.uint8)  # rounded
                else:
                    new = old * keep + rgb / 65025.0
                tl.store(ptr, new, mask=covered)


def _slots(plan: WindowPlan) -> list[tuple[int, int, int]]:
    """(first window, window count, largest window area) of each object slot, in paste order (host ints)."""
    slots: list[list[int]] = []
    last_k = None
    for bk in plan.buckets:
        if bk.count == 0:
            continue
        if bk.k != last_k:
            slots.append([bk.start, 0, 0])
            last_k = bk.k
        slots[-1][1] += bk.count
        slots[-1][2] = max(slots[-1][2], bk.h * bk.w)
    return [(s[0], s[1], s[2]) for s in slots]


def blend_windows(video: torch.Tensor, atlas: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
    """Composite every window of `plan` into `video` in place; returns the flat uint8 alpha (``plan.alpha_size``).

    video: (B, 3, T, H, W) contiguous uint8 or float32 in [0, 1], on CUDA (CPU under ``TRITON_INTERPRET=1``);
    atlas: (N, 4, A, A) uint8 straight RGBA on the same device, ideally channels-last in memory (`texel_cells`).
    """
    if not available():
        raise RuntimeError("triton_kernel.blend_windows: needs the triton package and CUDA (or TRITON_INTERPRET=1)")
    if video.dim() != 5 or video.shape[1] != 3 or video.dtype not in (torch.uint8, torch.float32):
        raise ValueError(f"blend_windows: video must be (B, 3, T, H, W) uint8 or float32, got "
                         f"{tuple(video.shape)} {video.dtype}")
    if not video.is_contiguous():
        raise ValueError("blend_windows: video must be contiguous")
    alpha = torch.empty(plan.alpha_size, dtype=torch.uint8, device=video.device)  # every byte gets written
    if len(plan) == 0:
        return alpha
    cells, sprite, bounds = texel_cells(atlas, plan.sprite)  # (M, A, A, 4) uint8, (n,) rows, (M, NB) float32
    bounds = bounds.contiguous()
    texels = cells.view(torch.int32)  # (M, A, A, 1): one texel per int32, R in the low byte (little-endian)
    _, _, T, H, W = video.shape
    A = cells.shape[1]
    with torch.cuda.device(video.device) if video.is_cuda else contextlib.nullcontext():
        for start, count, largest in _slots(plan):
            split = max(1, min(triton.cdiv(largest, BLOCK), triton.cdiv(_TARGET_PROGRAMS, count)))
            _blend_kernel[(count, split)](
                video, texels, alpha, plan.b, plan.t, plan.x0, plan.y0, plan.h, plan.w, sprite,
                plan.u0, plan.ux, plan.uy, plan.v0, plan.vx, plan.vy, plan.offset, bounds,
                start, T, H, W, T * H * W, A, NB=bounds.shape[1], IS_UINT8=video.dtype == torch.uint8, BLOCK=BLOCK,
                num_warps=NUM_WARPS)
    return alpha
