"""Batched compositing of rotated, scaled RGBA sprites onto clips, with the per-frame alpha of every object.

One bilinear affine warp per (clip, object, frame), computed only inside a window around that object in that
frame: windows of similar size (per-frame footprint, rotation and scale included, cut to the visible part) are
grouped into a few size buckets, and each bucket is one `grid_sample` over all its (clip, frame) windows at once.
The sprites of one object slot are stacked into one premultiplied texture (each cell padded with transparent
texels, the sample clamped to its own cell), so a bucket mixes clips freely. The blend ``v (1 - a) + rgb a`` is
computed on the window read straight from the clip (uint8 stays uint8 outside the windows; rounded, not truncated)
and written back in place. Objects are pasted in order k = 0, 1, ... (later ones on top). Works on CPU and CUDA,
for uint8 and float clips; the alpha comes back as an `ObjectAlpha` (windows, not full frames). The geometry is
stated on `MotionParams`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import MotionConfig
from .alpha import AlphaPiece, ObjectAlpha
from .params import REFERENCE_SIZE, MotionParams, sample_motion

__all__ = ["composite", "infuse_motion", "object_boxes", "atlas_size_for"]


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


def _bucket(side: torch.Tensor, step: int) -> torch.Tensor:
    """Round window sides up to multiples of `step` (8 on CPU: little wasted area; 32 on CUDA: few launches)."""
    return torch.div(side + step - 1, step, rounding_mode="floor") * step


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


def composite(video: torch.Tensor, atlas: torch.Tensor, params: MotionParams,
              inplace: bool = False) -> tuple[torch.Tensor, ObjectAlpha]:
    """Paste K objects into every frame of B clips.

    Args:
        video: (B, 3, T, H, W) uint8 in [0, 255] or float in [0, 1] (raw clips).
        atlas: (N, 4, A, A) uint8 RGBA cells (`ObjectBank.atlas`), on the video's device.
        params: motion of K objects per clip (`MotionParams`), any device (moved to the video's).
        inplace: write into `video` instead of a copy.

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
    params = params.to(device)
    K, A = params.num_objects, atlas.shape[-1]
    out = video if inplace else video.clone()
    alpha = ObjectAlpha.zeros(bsz, K, T, H, W, device)
    if K == 0 or bsz == 0:
        return out, alpha
    if int(params.object_ids.min()) < 0 or int(params.object_ids.max()) >= atlas.shape[0]:
        raise ValueError(f"composite: object_ids must index the {atlas.shape[0]} atlas rows")
    is_uint8 = video.dtype == torch.uint8
    atlas = atlas.to(device)
    step = 32 if device.type == "cuda" else 8

    hx, hy = object_boxes(params, A)  # (B, K, T) half extents with margin
    cx, cy = params.centers[..., 0].float(), params.centers[..., 1].float()  # (B, K, T)
    # the visible part of each footprint, in whole pixels: columns [xa, xb), rows [ya, yb)
    xa, xb = (cx - hx).clamp(0, W).floor(), (cx + hx).clamp(0, W).ceil()
    ya, yb = (cy - hy).clamp(0, H).floor(), (cy + hy).clamp(0, H).ceil()
    side = _bucket(torch.maximum(xb - xa, yb - ya).long(), step)  # (B, K, T) window side, 0 when invisible
    rad = torch.deg2rad(params.angles.float())
    cos, sin = rad.cos(), rad.sin()  # (B, K, T)
    # texel units per pixel of the sprite axes: the cell's A texels span the scaled box
    kx = A / (params.sizes[..., 0:1].float() * params.scales.float())  # (B, K, T)
    ky = A / (params.sizes[..., 1:2].float() * params.scales.float())
    Hm = bsz * (A + 2) + 2  # texture rows
    out_cf = out.transpose(0, 1)  # (3, B, T, H, W) view: windows come out channel-first

    for k in range(K):  # in paste order: later objects cover earlier ones
        keys, order = side[:, k].reshape(-1).sort()  # (B T,) entries e = b T + t, by window side
        sizes, counts = torch.unique_consecutive(keys, return_counts=True)
        tex = _texture(atlas[params.object_ids[:, k]], is_uint8)  # (1, 4, Hm, A + 2)
        start = 0
        for s, n in zip(sizes.tolist(), counts.tolist()):  # the one host sync of this slot
            idx, start = order[start:start + n], start + n
            if s == 0:
                continue  # wholly outside the frame
            b, t = idx.div(T, rounding_mode="floor"), idx.remainder(T)  # (n,)
            hh, ww = min(s, H), min(s, W)
            x0 = xa[b, k, t].long().clamp(max=W - ww)  # (n,) window origin, window inside the frame
            y0 = ya[b, k, t].long().clamp(max=H - hh)
            c, sn, gx, gy = cos[b, k, t], sin[b, k, t], kx[b, k, t], ky[b, k, t]  # (n,)
            ex = x0 + 0.5 - cx[b, k, t]  # (n,) first pixel centre relative to the object centre
            ey = y0 + 0.5 - cy[b, k, t]
            # sprite texel coords of pixel (i, j): lx = A/2 + kx (c dx - s dy), ly = A/2 + ky (s dx + c dy) with
            # dx = j + ex, dy = i + ey (rotation counter-clockwise on screen, y down); then normalised for
            # grid_sample over the texture (align_corners=False): x in cell columns 1..A, y in cell rows of clip b
            j = torch.arange(ww, device=device, dtype=torch.float32)
            i = torch.arange(hh, device=device, dtype=torch.float32)
            grid = torch.empty(n, hh, ww, 2, device=device)
            sx, sy = 2 / (A + 2), 2 / Hm
            row0 = (c * gx * sx).view(n, 1, 1) * j.view(1, 1, ww) + (gx * sx * (c * ex - sn * ey)).view(n, 1, 1)
            torch.add(row0, (-sn * gx * sx).view(n, 1, 1) * i.view(1, hh, 1), out=grid[..., 0])
            off = (b * (A + 2) + 2 + A / 2).float()  # (n,) texture row of the cell's centre line
            row1 = (sn * gy * sy).view(n, 1, 1) * j.view(1, 1, ww) + \
                ((gy * (sn * ex + c * ey) + off) * sy - 1).view(n, 1, 1)
            torch.add(row1, (c * gy * sy).view(n, 1, 1) * i.view(1, hh, 1), out=grid[..., 1])
            lo = ((off - A / 2 - 1) * sy - 1).view(n, 1, 1)  # keep y inside the cell's transparent border
            torch.clamp(grid[..., 1], lo, lo + (A + 2) * sy, out=grid[..., 1])
            smp = F.grid_sample(tex, grid.view(1, n * hh, ww, 2), mode="bilinear", padding_mode="border",
                                align_corners=False).view(4, n, hh, ww)
            a = smp[3]  # (n, hh, ww)
            windows = out_cf.unfold(3, hh, 1).unfold(4, ww, 1)  # (3, B, T, H - hh + 1, W - ww + 1, hh, ww) view
            blended = torch.addcmul(smp[:3], windows[:, b, t, y0, x0], 1 - a)  # (3, n, hh, ww)
            windows[:, b, t, y0, x0] = blended.to(video.dtype)  # uint8: truncating v (1 - a) + rgb + 0.5
            q = (a * 255).round_().clamp_(min=1).mul_(a > 0).to(torch.uint8)  # nonzero wherever a > 0
            alpha.pieces.append(AlphaPiece(k, b, t, y0, x0, q))
    return out, alpha


def atlas_size_for(cfg: MotionConfig, height: int, width: int, max_side: int) -> int:
    """Atlas cell side for a frame size: the largest object on screen (size_max * scale_max, scaled with the
    frame), rounded up to a multiple of 16, but never above the bank's sprite resolution."""
    largest = cfg.size_max * cfg.scale_max * min(height, width) / REFERENCE_SIZE
    return max(16, min(int(math.ceil(largest / 16)) * 16, int(math.ceil(max_side / 16)) * 16))


def infuse_motion(video: torch.Tensor, bank, cfg: MotionConfig,
                  generator: torch.Generator) -> tuple[torch.Tensor, ObjectAlpha]:
    """Sample motion for ``cfg.num_objects`` bank objects per clip and composite them (paper section 3.3).

    video: (B, 3, T, H, W) uint8 or float [0, 1]. Runs on ``cfg.device`` ("auto": the video's device).
    Returns (augmented video, alpha: `ObjectAlpha` of shape (B, K, T, H, W)); when motion is disabled or K = 0,
    the video itself and an empty alpha.
    """
    bsz, _, T, H, W = video.shape
    device = video.device if cfg.device == "auto" else torch.device(cfg.device)
    video = video.to(device)
    if not cfg.enabled or cfg.num_objects == 0:
        return video, ObjectAlpha.zeros(bsz, cfg.num_objects, T, H, W, device)
    params = sample_motion(bsz, T, H, W, len(bank), cfg, generator, device=device)
    atlas = bank.atlas(atlas_size_for(cfg, H, W, bank.max_side), device)
    return composite(video, atlas, params)
