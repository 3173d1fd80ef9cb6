"""Where each pasted object lands: one window per (clip, object, frame) and the affine map from its pixels to
sprite texels. Every compositing backend (`composite`'s torch, C and triton kernels) works from this plan.

Geometry (docs/motion.md): pixel (i, j) of a window whose top-left pixel is (y0, x0) has its centre at
``(x0 + j + 0.5, y0 + i + 0.5)``. Its sprite texel coordinates are

    u = u0 + ux j + uy i      (along the atlas cell's columns, in texels)
    v = v0 + vx j + vy i      (along the cell's rows)

with texel centres at ``c + 0.5`` (c = 0 .. A-1), i.e. ``grid_sample``'s ``align_corners=False`` convention, and
bilinear sampling; texels outside the cell are transparent. Windows are squares of a side rounded up to a
multiple of `step` and cut to the frame, grouped per object slot k (paste order) and side into buckets, so that
the alpha of a bucket is one (n, h, w) block (`AlphaPiece`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from .params import MotionParams

__all__ = ["WindowPlan", "Bucket", "object_boxes", "plan_windows", "texel_cells", "cell_bounds"]


def object_boxes(params: MotionParams, atlas_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Half extents (x, y) in pixels of each object's axis-aligned footprint, rotation included: (B, K, T) twice.

    A margin of half an atlas texel plus one pixel covers bilinear spill past the cell edge.
    """
    rad = torch.deg2rad(params.angles.float())  # (B, K, T)
    c, s = rad.cos().abs(), rad.sin().abs()
    w = params.sizes[..., 0:1].float() * params.scales.float()  # (B, K, T) box width in pixels
    h = params.sizes[..., 1:2].float() * params.scales.float()
    margin = 0.5 * torch.maximum(w, h) / atlas_size + 1.0
    return (c * w + s * h) / 2 + margin, (s * w + c * h) / 2 + margin


@dataclass
class Bucket:
    """Windows ``start .. start + count`` of the plan: object slot k, all of size (h, w); their alpha is the
    (count, h, w) block at `offset` of the flat alpha buffer."""

    k: int
    start: int
    count: int
    h: int
    w: int
    offset: int


@dataclass
class WindowPlan:
    """n visible windows, ordered by (object slot, window side); invisible (clip, object, frame) have none.

    Attributes:
        b, k, t, x0, y0, h, w, sprite: (n,) long clip, slot, frame, window origin (inside the frame), window size,
            atlas row.
        u0, ux, uy, v0, vx, vy: (n,) float32 affine map from window pixels to texels (module docstring).
        offset: (n,) long start of each window's (h, w) alpha in a flat buffer of `alpha_size` bytes, bucket after
            bucket, so that a bucket's windows are one contiguous (count, h, w) block.
        buckets: runs of equal (k, h, w).
        frame_windows: (B T, K) long, the window index of slot k in frame ``b T + t``, or -1 when invisible.
    """

    b: torch.Tensor
    k: torch.Tensor
    t: torch.Tensor
    x0: torch.Tensor
    y0: torch.Tensor
    h: torch.Tensor
    w: torch.Tensor
    sprite: torch.Tensor
    u0: torch.Tensor
    ux: torch.Tensor
    uy: torch.Tensor
    v0: torch.Tensor
    vx: torch.Tensor
    vy: torch.Tensor
    offset: torch.Tensor
    alpha_size: int
    buckets: list[Bucket]
    frame_windows: torch.Tensor

    def __len__(self) -> int:
        return self.b.shape[0]

    def to(self, device: torch.device | str) -> WindowPlan:
        """The plan on `device`, in two copies (one of the long arrays, one of the float ones) instead of sixteen:
        on a GPU, planning on the host and copying is cheaper than ~60 tiny kernel launches (`composite`)."""
        return self if self.b.device == torch.device(device) else self._packed_copy(device)

    def _packed_copy(self, device: torch.device | str) -> WindowPlan:
        longs = (self.b, self.k, self.t, self.x0, self.y0, self.h, self.w, self.sprite, self.offset,
                 self.frame_windows.reshape(-1))
        floats = (self.u0, self.ux, self.uy, self.v0, self.vx, self.vy)
        lg = torch.cat(longs).to(device, non_blocking=True).split([x.numel() for x in longs])
        fl = torch.cat(floats).to(device, non_blocking=True).split([x.numel() for x in floats])
        names = ("b", "k", "t", "x0", "y0", "h", "w", "sprite", "offset", "u0", "ux", "uy", "v0", "vx", "vy")
        return WindowPlan(**dict(zip(names, lg[:9] + fl)), alpha_size=self.alpha_size, buckets=self.buckets,
                          frame_windows=lg[9].view(self.frame_windows.shape))


def plan_windows(params: MotionParams, atlas_size: int, height: int, width: int, step: int = 8) -> WindowPlan:
    """The windows of every visible (clip, object, frame) and their texel maps (module docstring).

    `params` on any device (the plan is on the same device); one host sync (the bucket sizes), so `buckets` are
    host integers.
    """
    if step < 1:
        raise ValueError(f"plan_windows: step must be >= 1, got {step}")
    B, K, T, H, W, A = params.batch, params.num_objects, params.num_frames, height, width, atlas_size
    device = params.centers.device
    hx, hy = object_boxes(params, A)  # (B, K, T) half extents with margin
    cx, cy = params.centers[..., 0].float(), params.centers[..., 1].float()  # (B, K, T)
    # the visible part of each footprint, in whole pixels: columns [xa, xb), rows [ya, yb)
    xa, xb = (cx - hx).clamp(0, W).floor(), (cx + hx).clamp(0, W).ceil()
    ya, yb = (cy - hy).clamp(0, H).floor(), (cy + hy).clamp(0, H).ceil()
    side = torch.maximum(xb - xa, yb - ya).long()
    side = torch.div(side + step - 1, step, rounding_mode="floor") * step  # (B, K, T), 0 when invisible
    # order: slot k first (paste order), then side; entries e = (k B + b) T + t
    key = side.transpose(0, 1).reshape(-1)  # (K B T,)
    base = 4 * max(H, W) + 8 * step  # above any side: slot * base + side sorts by slot, then side
    slot = torch.arange(K, device=device).repeat_interleave(B * T)
    order = torch.argsort(slot * base + key, stable=True)
    order = order[key[order] > 0]  # visible windows only
    k = order.div(B * T, rounding_mode="floor")
    b = order.div(T, rounding_mode="floor").remainder(B)
    t = order.remainder(T)
    s = key[order]
    h, w = s.clamp(max=H), s.clamp(max=W)
    x0 = torch.minimum(xa[b, k, t].long(), W - w)  # window inside the frame
    y0 = torch.minimum(ya[b, k, t].long(), H - h)

    rad = torch.deg2rad(params.angles[b, k, t].float())
    c, sn = rad.cos(), rad.sin()
    scale = params.scales[b, k, t].float()
    gx = A / (params.sizes[b, k, 0].float() * scale)  # texels per pixel along the sprite's axes
    gy = A / (params.sizes[b, k, 1].float() * scale)
    ex = x0 + 0.5 - cx[b, k, t]  # first pixel centre relative to the object centre
    ey = y0 + 0.5 - cy[b, k, t]
    # u = A/2 + gx (c dx - s dy), v = A/2 + gy (s dx + c dy), dx = ex + j, dy = ey + i (counter-clockwise on
    # screen with y down, like PIL's rotate)
    u0, ux, uy = A / 2 + gx * (c * ex - sn * ey), gx * c, -gx * sn
    v0, vx, vy = A / 2 + gy * (sn * ex + c * ey), gy * sn, gy * c

    area = h * w
    offset = torch.cumsum(area, 0) - area
    # runs of equal (k, side): one host sync, then host arithmetic only
    values, counts = torch.unique_consecutive(k * base + s, return_counts=True)
    buckets, start, first = [], 0, 0
    for value, n in zip(*torch.stack([values, counts]).tolist()):
        side = value % base
        bk = Bucket(value // base, start, n, min(side, H), min(side, W), first)
        buckets.append(bk)
        start, first = start + n, first + n * bk.h * bk.w
    frame_windows = torch.full((B * T, K), -1, dtype=torch.long, device=device)
    frame_windows[b * T + t, k] = torch.arange(len(order), device=device)
    return WindowPlan(b=b, k=k, t=t, x0=x0, y0=y0, h=h, w=w, sprite=params.object_ids[b, k],
                      u0=u0, ux=ux, uy=uy, v0=v0, vx=vx, vy=vy, offset=offset, alpha_size=first,
                      buckets=buckets, frame_windows=frame_windows)


def texel_cells(atlas: torch.Tensor, sprite: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The atlas as (M, A, A, 4) channel-last RGBA cells, each window's row in them, and their `cell_bounds`
    (M, 8).

    A channels-last atlas (`ObjectBank.atlas`) is used as it is (a view, M = N, rows unchanged; its bounds are
    computed once and cached on the atlas tensor); any other layout gathers only the rows in use (M = their
    count) instead of converting the whole atlas.
    atlas: (N, 4, A, A) uint8; sprite: (n,) long atlas rows -> (cells, (n,) long rows of cells, (M, 8) float32).
    """
    cells = atlas.permute(0, 2, 3, 1)
    if cells.is_contiguous():
        cached = _BOUNDS.get(id(atlas))
        known = cached is not None and cached[0]() is atlas
        if not known:
            weakref.finalize(atlas, _BOUNDS.pop, id(atlas), None)
        if not known or cached[1] != atlas._version:  # the version counter catches in-place edits
            cached = _BOUNDS[id(atlas)] = (weakref.ref(atlas), atlas._version, cell_bounds(cells))
        return cells, sprite, cached[2]
    used, rows = torch.unique(sprite, return_inverse=True)
    cells = cells[used].contiguous()
    return cells, rows, cell_bounds(cells)


_BOUNDS: dict[int, tuple] = {}  # id(atlas) -> (weakref to it, its version, bounds); dropped with the atlas


def cell_bounds(cells: torch.Tensor) -> torch.Tensor:
    """(M, 8) float32 bounds of where a bilinear sample of each cell can be non-zero: an octagon in texel space,
    ``u_lo < u < u_hi``, ``v_lo < v < v_hi``, ``s_lo < u + v < s_hi``, ``d_lo < u - v < d_hi`` (columns in that
    order). Texel (cu, cv) with alpha > 0 reaches samples with ``|u - cu - 0.5| < 1`` and ``|v - cv - 0.5| < 1``;
    the bounds are the union over those texels. Fully transparent cells get empty ranges. The diagonal bounds cut
    the corners of round sprites (most emoji), so kernels skip more untouched pixels.

    cells: (M, A, A, 4) uint8 (`texel_cells`).
    """
    A = cells.shape[1]
    out = torch.empty(cells.shape[0], 8, device=cells.device)
    cv, cu = torch.meshgrid(torch.arange(A, device=cells.device, dtype=torch.float32),
                            torch.arange(A, device=cells.device, dtype=torch.float32), indexing="ij")  # (A, A)
    big = float(4 * A + 8)
    # per quantity q(cu, cv): (value, margin below its min, margin above its max)
    quantities = ((cu, -0.5, 1.5), (cv, -0.5, 1.5), (cu + cv, -1.0, 3.0), (cu - cv, -2.0, 2.0))
    for start in range(0, cells.shape[0], 128):  # chunks: a bool copy of the whole atlas would be large
        opaque = cells[start:start + 128, ..., 3] > 0  # (m, A, A)
        for c, (q, below, above) in enumerate(quantities):
            out[start:start + 128, 2 * c] = torch.where(opaque, q, big).amin(dim=(1, 2)) + below
            out[start:start + 128, 2 * c + 1] = torch.where(opaque, q, -big).amax(dim=(1, 2)) + above
    return out
