"""Batched compositing of rotated, scaled RGBA sprites onto clips, with the per-frame alpha of every object.

One bilinear affine warp per (clip, object, frame), all at once: `F.grid_sample` of the premultiplied sprite over
a window around each object (not the whole frame), then a vectorised alpha blend (``v (1 - a) + rgb a``, rounded
for uint8) written back into the clip. Windows of similar size are grouped into a few buckets so each bucket is
one `grid_sample` call; objects are pasted in order k = 0, 1, ... (later ones on top). Works on CPU and CUDA,
for uint8 and float clips. The geometry is stated on `MotionParams`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import MotionConfig
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


def _bucket(side: int) -> int:
    """Round a window side up to a small set of sizes (multiples of 8, then 16) so windows batch together."""
    return -(-side // 8) * 8 if side <= 64 else -(-side // 16) * 16


def composite(video: torch.Tensor, atlas: torch.Tensor, params: MotionParams,
              inplace: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste K objects into every frame of B clips.

    Args:
        video: (B, 3, T, H, W) uint8 in [0, 255] or float in [0, 1] (raw clips).
        atlas: (N, 4, A, A) uint8 RGBA cells (`ObjectBank.atlas`), on the video's device.
        params: motion of K objects per clip (`MotionParams`), any device (moved to the video's).
        inplace: write into `video` instead of a copy.

    Returns:
        (augmented video: same shape, dtype and device as `video`;
         alpha: (B, K, T, H, W) float32 in [0, 1], the coverage of each object in each frame, before occlusion by
         later objects). Pixels where every object's alpha is 0 are left exactly unchanged.
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
    alpha = torch.zeros(bsz, K, T, H, W, dtype=torch.float32, device=device)
    if K == 0 or bsz == 0:
        return out, alpha
    if int(params.object_ids.min()) < 0 or int(params.object_ids.max()) >= atlas.shape[0]:
        raise ValueError(f"composite: object_ids must index the {atlas.shape[0]} atlas rows")
    is_uint8 = video.dtype == torch.uint8
    atlas = atlas.to(device)

    hx, hy = object_boxes(params, A)  # (B, K, T) half extents with margin
    # window side per (clip, object): the largest footprint over the clip, bucketed, at most the frame
    side_host = ((2 * torch.maximum(hx, hy)).amax(-1).ceil().long() + 2).tolist()  # (B, K) on the host
    rad = torch.deg2rad(params.angles.float())
    cos, sin = rad.cos(), rad.sin()  # (B, K, T)
    half_w = params.sizes[..., 0:1].float() * params.scales.float() / 2  # (B, K, T) half box size
    half_h = params.sizes[..., 1:2].float() * params.scales.float() / 2
    cx, cy = params.centers[..., 0].float(), params.centers[..., 1].float()  # (B, K, T)
    t_idx = torch.arange(T, device=device).view(1, T)

    for k in range(K):  # in paste order: later objects cover earlier ones
        buckets: dict[int, list[int]] = {}
        for b in range(bsz):
            buckets.setdefault(_bucket(side_host[b][k]), []).append(b)
        for s, members in sorted(buckets.items()):
            bi = torch.tensor(members, device=device)  # (n,)
            n, hh, ww = len(members), min(s, H), min(s, W)
            # window origins: the footprint's top-left pixel, clamped so the window stays inside the frame
            x0 = (cx[bi, k] - hx[bi, k] - 0.5).floor().long().clamp(0, W - ww)  # (n, T)
            y0 = (cy[bi, k] - hy[bi, k] - 0.5).floor().long().clamp(0, H - hh)  # (n, T)
            # inverse affine, window-normalised coords -> sprite-normalised coords (both align_corners=False):
            # frame x = x0 + (xn + 1) ww / 2; local = R(-angle) (x - c); sprite xs = local_x / half_w
            c, sn, hw_, hh_ = cos[bi, k], sin[bi, k], half_w[bi, k], half_h[bi, k]  # (n, T)
            ox = x0.float() + ww / 2 - cx[bi, k]  # (n, T) window centre minus object centre
            oy = y0.float() + hh / 2 - cy[bi, k]
            # grid = (ax u' + bx v' + cx, ay u' + by v' + cy) with u', v' the window-normalised pixel centres
            un = ((torch.arange(ww, device=device, dtype=torch.float32) * 2 + 1) / ww - 1).view(1, 1, 1, ww)
            vn = ((torch.arange(hh, device=device, dtype=torch.float32) * 2 + 1) / hh - 1).view(1, 1, hh, 1)
            grid = torch.empty(n, T, hh, ww, 2, device=device)  # (n, T, hh, ww, 2)
            for j, (ax, bx, cx_) in enumerate((
                (c * ww / 2 / hw_, -sn * hh / 2 / hw_, (c * ox - sn * oy) / hw_),
                (sn * ww / 2 / hh_, c * hh / 2 / hh_, (sn * ox + c * oy) / hh_),
            )):
                row = ax.view(n, T, 1, 1) * un + cx_.view(n, T, 1, 1)  # (n, T, 1, ww)
                torch.add(row, bx.view(n, T, 1, 1) * vn, out=grid[..., j])  # (n, T, hh, ww)
            sprite = atlas[params.object_ids[bi, k]].float().div_(255)  # (n, 4, A, A) straight RGBA
            sprite[:, :3] *= sprite[:, 3:]  # premultiplied: bilinear filtering without dark fringes
            warped = F.grid_sample(sprite, grid.view(n, T * hh, ww, 2), mode="bilinear", padding_mode="zeros",
                                   align_corners=False)  # (n, 4, T hh, ww)
            warped = warped.view(n, 4, T, hh, ww).transpose(1, 2)  # (n, T, 4, hh, ww)
            a = warped[:, :, 3:].clamp_(0, 1)  # (n, T, 1, hh, ww)
            # windows as views: frames unfolded into every (hh, ww) window, then picked per (clip, frame)
            b_idx = bi.view(n, 1)
            windows = out.unfold(3, hh, 1).unfold(4, ww, 1)  # (B, 3, T, H - hh + 1, W - ww + 1, hh, ww) view
            window = windows[b_idx, :, t_idx, y0, x0]  # (n, T, 3, hh, ww) copy
            if is_uint8:
                blended = torch.addcmul(warped[:, :, :3] * 255, window.float(), 1 - a)
                blended = blended.round_().clamp_(0, 255).to(torch.uint8)
            else:
                blended = torch.addcmul(warped[:, :, :3], window.float(), 1 - a).to(video.dtype)
            windows[b_idx, :, t_idx, y0, x0] = blended  # windows of distinct frames never overlap
            alpha[:, k].unfold(2, hh, 1).unfold(3, ww, 1)[b_idx, t_idx, y0, x0] = a[:, :, 0]
    return out, alpha


def atlas_size_for(cfg: MotionConfig, height: int, width: int, max_side: int) -> int:
    """Atlas cell side for a frame size: the largest object on screen (size_max * scale_max, scaled with the
    frame), rounded up to a multiple of 16, but never above the bank's sprite resolution."""
    largest = cfg.size_max * cfg.scale_max * min(height, width) / REFERENCE_SIZE
    return max(16, min(int(math.ceil(largest / 16)) * 16, int(math.ceil(max_side / 16)) * 16))


def infuse_motion(video: torch.Tensor, bank, cfg: MotionConfig,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample motion for ``cfg.num_objects`` bank objects per clip and composite them (paper section 3.3).

    video: (B, 3, T, H, W) uint8 or float [0, 1]. Runs on ``cfg.device`` ("auto": the video's device).
    Returns (augmented video, alpha (B, K, T, H, W) float); when motion is disabled or K = 0, the video itself and
    an all-zero alpha.
    """
    bsz, _, T, H, W = video.shape
    device = video.device if cfg.device == "auto" else torch.device(cfg.device)
    video = video.to(device)
    if not cfg.enabled or cfg.num_objects == 0:
        return video, torch.zeros(bsz, cfg.num_objects, T, H, W, device=device)
    params = sample_motion(bsz, T, H, W, len(bank), cfg, generator, device=device)
    atlas = bank.atlas(atlas_size_for(cfg, H, W, bank.max_side), device)
    return composite(video, atlas, params)
