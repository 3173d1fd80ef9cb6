"""The window plan every compositing backend shares, and the sprite bounds the fused kernels skip pixels with."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from smile_video.config import MotionConfig
from smile_video.motion import plan_windows, sample_motion
from smile_video.motion.windows import texel_cells


def test_plan_layout_buckets_and_frame_index():
    B, T, S = 4, 6, 64
    params = sample_motion(B, T, S, S, 10, MotionConfig(trajectory="official", num_objects=3),
                           torch.Generator().manual_seed(0))
    plan = plan_windows(params, 32, S, S)
    n = len(plan)
    assert 0 < n <= B * T * 3
    assert (plan.x0 >= 0).all() and (plan.y0 >= 0).all()
    assert (plan.x0 + plan.w <= S).all() and (plan.y0 + plan.h <= S).all()  # windows inside the frame
    assert (plan.h % 8 == 0).all() and (plan.h == plan.w).all()
    assert torch.equal(plan.offset, torch.cumsum(plan.h * plan.w, 0) - plan.h * plan.w)
    assert plan.alpha_size == int((plan.h * plan.w).sum())
    assert (plan.k[1:] >= plan.k[:-1]).all()  # paste order: slot by slot
    covered = 0
    for bk in plan.buckets:  # runs of one (k, h, w), back to back
        assert bk.start == covered and bk.count > 0
        sl = slice(bk.start, bk.start + bk.count)
        assert (plan.k[sl] == bk.k).all() and (plan.h[sl] == bk.h).all() and (plan.w[sl] == bk.w).all()
        assert bk.offset == int(plan.offset[bk.start]) and isinstance(bk.offset, int)
        covered += bk.count
    assert covered == n
    e = plan.frame_windows[plan.b * T + plan.t, plan.k]
    assert torch.equal(e, torch.arange(n))  # every window is found from its (clip, frame, slot)
    assert (plan.frame_windows >= 0).sum() == n
    assert torch.equal(plan.sprite, params.object_ids[plan.b, plan.k])


_FIELDS = ("b", "k", "t", "x0", "y0", "h", "w", "sprite", "u0", "ux", "uy", "v0", "vx", "vy", "offset",
           "frame_windows")


def test_plan_moves_to_a_device_in_packed_copies_with_every_field_in_its_place():
    B, T, S = 3, 5, 64
    params = sample_motion(B, T, S, S, 10, MotionConfig(trajectory="official", num_objects=2),
                           torch.Generator().manual_seed(1))
    plan = plan_windows(params, 32, S, S)
    assert plan.to("cpu") is plan
    moved = plan.to("meta")  # packing and splitting without a GPU: shapes, dtypes and the device of every field
    for name in _FIELDS:
        a, b = getattr(plan, name), getattr(moved, name)
        assert b.device.type == "meta" and b.shape == a.shape and b.dtype == a.dtype, name
    assert moved.buckets == plan.buckets and moved.alpha_size == plan.alpha_size
    copies = [plan._packed_copy("cpu")] + ([plan.to("cuda")] if torch.cuda.is_available() else [])
    for copy in copies:  # and the values, field by field
        for name in _FIELDS:
            assert torch.equal(getattr(copy, name).cpu(), getattr(plan, name)), name


def test_plan_texel_map_puts_the_object_centre_at_the_cell_centre():
    params = sample_motion(2, 3, 96, 96, 5, MotionConfig(), torch.Generator().manual_seed(1))
    A = 40
    plan = plan_windows(params, A, 96, 96)
    cx, cy = params.centers[plan.b, plan.k, plan.t].unbind(-1)  # (n,) object centres in pixels
    j, i = cx - plan.x0 - 0.5, cy - plan.y0 - 0.5  # fractional window pixel at the centre
    u = plan.u0 + plan.ux * j + plan.uy * i
    v = plan.v0 + plan.vx * j + plan.vy * i
    assert torch.allclose(u, torch.full_like(u, A / 2), atol=1e-3)
    assert torch.allclose(v, torch.full_like(v, A / 2), atol=1e-3)
    scale = params.sizes[plan.b, plan.k, 0] * params.scales[plan.b, plan.k, plan.t]
    assert torch.allclose(torch.hypot(plan.ux, plan.vx), A / scale, rtol=1e-5)  # texels per pixel


def test_cell_bounds_contain_every_non_zero_sample_and_cut_corners():
    g = torch.Generator().manual_seed(0)
    A = 20
    atlas = torch.zeros(3, 4, A, A, dtype=torch.uint8)
    ys, xs = torch.meshgrid(torch.arange(A) + 0.5, torch.arange(A) + 0.5, indexing="ij")
    atlas[0, 3] = (((xs - 10) ** 2 + (ys - 10) ** 2) < 64).to(torch.uint8) * 255  # a disc
    atlas[1, 3] = (torch.rand(A, A, generator=g) < 0.05).to(torch.uint8) * 200  # scattered texels
    atlas[1, 3, :, :3] = 0
    cells, rows, bounds = texel_cells(atlas, torch.tensor([0, 1, 2]))
    assert bounds.shape == (3, 8) and torch.equal(rows, torch.tensor([0, 1, 2]))
    # bilinear alpha at random points of [-2, A + 2)^2 (texel units), as every backend samples it
    pts = torch.rand(20000, 2, generator=g) * (A + 4) - 2  # (u, v)
    grid = (pts / A * 2 - 1).view(1, 1, -1, 2)  # align_corners=False: texel centres at c + 0.5
    for m in range(2):
        a = F.grid_sample(atlas[m, 3].float().view(1, 1, A, A), grid, align_corners=False).view(-1)
        u, v = pts[a > 1e-4].unbind(-1)
        lo_u, hi_u, lo_v, hi_v, lo_s, hi_s, lo_d, hi_d = bounds[m].tolist()
        assert len(u) > 50
        assert ((u > lo_u) & (u < hi_u) & (v > lo_v) & (v < hi_v)).all()
        assert ((u + v > lo_s) & (u + v < hi_s) & (u - v > lo_d) & (u - v < hi_d)).all()
    lo_u, hi_u, lo_v, hi_v, lo_s, hi_s, lo_d, hi_d = bounds[0].tolist()
    assert hi_s < hi_u + hi_v - 3 and lo_s > lo_u + lo_v + 3  # the disc's octagon is tighter than its box
    assert bounds[2, 0] > bounds[2, 1]  # a transparent cell: an empty range
    _, rows, gathered = texel_cells(atlas, torch.tensor([2, 0]))  # only the rows in use, gathered
    assert torch.equal(gathered[rows], bounds[[2, 0]])
