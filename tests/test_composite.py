"""Compositing: geometry (centre, area, rotation direction), untouched pixels, rounding, paste order, seeds."""

from __future__ import annotations

import pytest
import torch

from smile_video.config import MotionConfig
from smile_video.motion import MotionParams, ObjectAlpha, infuse_motion, paste_objects, sample_motion
from smile_video.motion import composite as _composite
from smile_video.objects import ObjectBank

A = 32  # atlas cell side


def _atlas() -> torch.Tensor:
    """Row 0: opaque red square filling the cell; row 1: a horizontal bar with a blue marker on its right end;
    row 2: white at alpha 128/255 everywhere; row 3: opaque green square."""
    atlas = torch.zeros(4, 4, A, A, dtype=torch.uint8)
    atlas[0, 0], atlas[0, 3] = 255, 255
    atlas[1, :, 12:20, :] = torch.tensor([200, 200, 200, 255], dtype=torch.uint8).view(4, 1, 1)
    atlas[1, :, 12:20, 26:] = torch.tensor([0, 0, 255, 255], dtype=torch.uint8).view(4, 1, 1)
    atlas[2, :3], atlas[2, 3] = 255, 128
    atlas[3, 1], atlas[3, 3] = 255, 255
    return atlas


BACKEND = {"name": "auto"}


@pytest.fixture(autouse=True, params=["c", "torch"])
def backend(request):
    """Every test here runs with each CPU backend (`composite` below passes it on)."""
    from smile_video.motion import cpu_kernel

    if request.param == "c" and not cpu_kernel.available():
        pytest.skip(f"no C kernel: {cpu_kernel.build_error()}")
    BACKEND["name"] = request.param
    yield request.param
    BACKEND["name"] = "auto"


def composite(video, atlas, params):
    """`composite` (with the test's backend) with the alpha as a dense (B, K, T, H, W) float tensor."""
    out, alpha = _composite(video, atlas, params, backend=BACKEND["name"] if video.device.type == "cpu" else "auto")
    assert isinstance(alpha, ObjectAlpha) and alpha.shape == (video.shape[0], params.num_objects, *video.shape[2:])
    return out, alpha.dense()


def _params(ids, centers, angles, scales, sizes, T=1) -> MotionParams:
    """One clip, K objects with constant transforms over T frames."""
    K = len(ids)
    c = torch.tensor(centers, dtype=torch.float32).view(1, K, 1, 2).expand(1, K, T, 2).contiguous()
    return MotionParams(object_ids=torch.tensor([ids]), centers=c,
                        angles=torch.tensor(angles, dtype=torch.float32).view(1, K, 1).expand(1, K, T).contiguous(),
                        scales=torch.tensor(scales, dtype=torch.float32).view(1, K, 1).expand(1, K, T).contiguous(),
                        sizes=torch.tensor(sizes, dtype=torch.float32).view(1, K, 2))


def _video(T=1, H=64, W=64, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (1, 3, T, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_square_centre_area_and_untouched_pixels():
    video = _video()
    out, alpha = composite(video, _atlas(), _params([0], [(30.0, 20.0)], [0.0], [1.0], [(16.0, 16.0)]))
    assert out.shape == video.shape and out.dtype == torch.uint8 and alpha.shape == (1, 1, 1, 64, 64)
    a = alpha[0, 0, 0]
    assert abs(a.sum().item() - 256) < 1.0  # 16 x 16 px
    assert torch.equal(a[12:28, 22:38], torch.ones(16, 16))  # covers x in [22, 38), y in [12, 28)
    ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    assert abs((a * xs).sum() / a.sum() - 30) < 1e-3 and abs((a * ys).sum() / a.sum() - 20) < 1e-3
    outside = a == 0
    assert torch.equal(out[0, :, 0][:, outside], video[0, :, 0][:, outside])  # exactly unchanged
    assert (out[0, 0, 0][a == 1] == 255).all() and (out[0, 1:, 0][:, a == 1] == 0).all()
    assert not torch.equal(out, video) and torch.equal(video, _video())  # the input is not modified


def test_scale_multiplies_area():
    areas = []
    for s in (0.5, 1.0, 2.0):
        _, alpha = composite(_video(), _atlas(), _params([0], [(32.0, 32.0)], [0.0], [s], [(12.0, 12.0)]))
        areas.append(alpha.sum().item())
    assert areas[0] == pytest.approx(36, rel=0.03) and areas[2] == pytest.approx(576, rel=0.03)
    assert areas[1] / areas[0] == pytest.approx(4, rel=0.05)


def test_rotation_is_counter_clockwise_and_keeps_area():
    def moments(angle):
        out, alpha = composite(_video(), _atlas(), _params([1], [(32.0, 32.0)], [angle], [1.0], [(40.0, 40.0)]))
        a = alpha[0, 0, 0]
        ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
        var_x = (a * (xs - 32) ** 2).sum() / a.sum()
        var_y = (a * (ys - 32) ** 2).sum() / a.sum()
        blue = (out[0, 2, 0] > 200) & (out[0, 0, 0] < 60) & (a > 0.99)
        return a.sum().item(), var_x.item(), var_y.item(), xs[blue].mean().item(), ys[blue].mean().item()

    area0, vx0, vy0, bx0, by0 = moments(0.0)
    area90, vx90, vy90, bx90, by90 = moments(90.0)
    assert vx0 > 5 * vy0 and vy90 > 5 * vx90  # the bar turns from horizontal to vertical
    assert area90 == pytest.approx(area0, rel=0.03)
    assert bx0 > 45 and abs(by0 - 32) < 2  # marker on the right ...
    assert by90 < 19 and abs(bx90 - 32) < 2  # ... goes up: counter-clockwise on screen, like PIL rotate
    *_, bxm, bym = moments(-90.0)
    assert bym > 45


def test_alpha_blend_is_rounded():
    video = torch.full((1, 3, 1, 16, 16), 2, dtype=torch.uint8)
    out, alpha = composite(video, _atlas(), _params([2], [(8.0, 8.0)], [0.0], [1.0], [(12.0, 12.0)]))
    a = 128 / 255
    assert alpha[0, 0, 0, 8, 8].item() == pytest.approx(a, abs=1e-6)
    assert out[0, 0, 0, 8, 8].item() == 129  # 2 (1 - a) + 255 a = 128.996: rounded, not truncated to 128


def test_float_video_matches_uint8():
    video = _video(T=3, seed=1)
    p = sample_motion(1, 3, 64, 64, 4, MotionConfig(), torch.Generator().manual_seed(0))
    out_u8, alpha_u8 = composite(video, _atlas(), p)
    out_f, alpha_f = composite(video.float() / 255, _atlas(), p)
    assert out_f.dtype == torch.float32 and torch.equal(alpha_u8, alpha_f)
    assert ((out_f * 255 - out_u8.float()).abs() <= 0.5 + 1e-3).all()
    untouched = alpha_f.sum(1, keepdim=True).expand_as(out_f.transpose(0, 1)).transpose(0, 1) == 0
    assert torch.equal(out_f[untouched], (video.float() / 255)[untouched])


def test_later_objects_are_on_top_and_alpha_is_per_object():
    p = _params([0, 3], [(30.0, 30.0), (34.0, 34.0)], [0.0, 0.0], [1.0, 1.0], [(20.0, 20.0), (20.0, 20.0)])
    out, alpha = composite(_video(), _atlas(), p)
    assert alpha[0, 0, 0, 30, 30] == 1 and alpha[0, 1, 0, 30, 30] == 1  # both cover the overlap
    assert out[0, :, 0, 30, 30].tolist() == [0, 255, 0]  # green (k = 1) over red (k = 0)
    assert out[0, :, 0, 22, 22].tolist() == [255, 0, 0]  # only red here


def test_objects_may_leave_the_frame():
    video = _video()
    out, alpha = composite(video, _atlas(), _params([0], [(-2.0, 10.0)], [30.0], [1.0], [(20.0, 20.0)]))
    assert 0 < alpha.sum() < 400 * 0.5  # partly visible
    out, alpha = composite(video, _atlas(), _params([0], [(200.0, -90.0)], [0.0], [1.0], [(20.0, 20.0)]))
    assert alpha.sum() == 0 and torch.equal(out, video)  # wholly outside


def test_alpha_follows_moving_object_over_frames():
    T = 6
    centers = torch.stack([torch.linspace(10, 50, T), torch.full((T,), 30.0)], -1).view(1, 1, T, 2)
    p = MotionParams(torch.tensor([[0]]), centers, torch.linspace(0, 90, T).view(1, 1, T),
                     torch.linspace(0.5, 1.5, T).view(1, 1, T), torch.tensor([[[10.0, 10.0]]]))
    _, alpha = composite(_video(T=T), _atlas(), p)
    xs = torch.arange(64) + 0.5
    cx = (alpha[0, 0].sum(1) * xs).sum(-1) / alpha[0, 0].sum((1, 2))  # (T,) alpha centroid in x
    assert torch.allclose(cx, centers[0, 0, :, 0], atol=0.05)
    area = alpha[0, 0].sum((1, 2))
    assert torch.allclose(area, (10 * torch.linspace(0.5, 1.5, T)) ** 2, rtol=0.05)


def test_infuse_motion_same_seed_same_clip_and_disabled():
    bank = ObjectBank([s for s in _atlas()], [0, 1, 2, 3], ["a", "b", "c", "d"], max_side=A)
    video = _video(T=4, H=48, W=48)
    cfg = MotionConfig()
    a = infuse_motion(video, bank, cfg, torch.Generator().manual_seed(5))
    b = infuse_motion(video, bank, cfg, torch.Generator().manual_seed(5))
    c = infuse_motion(video, bank, cfg, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1].dense(), b[1].dense()) and not torch.equal(a[0], c[0])
    assert a[1].shape == (1, 2, 4, 48, 48)
    cfg.enabled = False
    out, alpha = infuse_motion(video, bank, cfg, torch.Generator().manual_seed(5))
    assert out is video and alpha.shape == (1, 2, 4, 48, 48) and alpha.dense().sum() == 0


def test_paste_objects_of_sampled_params_is_infuse_motion_and_pastes_edited_params():
    bank = ObjectBank([s for s in _atlas()], [0, 1, 2, 3], ["a", "b", "c", "d"], max_side=A)
    video = _video(T=4, H=48, W=48)
    cfg = MotionConfig()
    ref, ref_alpha = infuse_motion(video, bank, cfg, torch.Generator().manual_seed(5))
    params = sample_motion(1, 4, 48, 48, len(bank), cfg, torch.Generator().manual_seed(5))
    out, alpha = paste_objects(video, bank, cfg, params)
    assert torch.equal(out, ref) and torch.equal(alpha.dense(), ref_alpha.dense())
    # an edit of the params is what gets pasted: the objects moved off screen leave the clip as it was
    gone = MotionParams(params.object_ids, params.centers + 1000.0, params.angles, params.scales, params.sizes)
    out, alpha = paste_objects(video, bank, cfg, gone)
    assert torch.equal(out, video) and alpha.dense().sum() == 0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="centers"):
        MotionParams(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 1, 4, 2), torch.zeros(1, 2, 4),
                     torch.ones(1, 2, 4), torch.ones(1, 2, 2))
    p = _params([9], [(8.0, 8.0)], [0.0], [1.0], [(4.0, 4.0)])
    with pytest.raises(ValueError, match="atlas rows"):
        composite(_video(), _atlas(), p)
    with pytest.raises(ValueError, match="scales must be > 0"):
        composite(_video(), _atlas(), _params([0], [(8.0, 8.0)], [0.0], [0.0], [(4.0, 4.0)]))
    with pytest.raises(ValueError, match="must be finite"):
        composite(_video(), _atlas(), _params([0], [(float("nan"), 8.0)], [0.0], [1.0], [(4.0, 4.0)]))
    with pytest.raises(ValueError, match="backend must be one of"):
        _composite(_video(), _atlas(), _params([0], [(8.0, 8.0)], [0.0], [1.0], [(4.0, 4.0)]), backend="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    video = _video(T=4, seed=3)
    p = sample_motion(1, 4, 64, 64, 4, MotionConfig(), torch.Generator().manual_seed(0))
    cpu_out, cpu_alpha = composite(video, _atlas(), p)
    gpu_out, gpu_alpha = composite(video.cuda(), _atlas().cuda(), p)
    assert (gpu_out.cpu().int() - cpu_out.int()).abs().max() <= 1
    assert (gpu_alpha.cpu() - cpu_alpha).abs().max() < 1e-4


def test_object_alpha_windows_match_dense_for_masking_and_cat():
    from smile_video.masking import object_tokens, trajectory_mask

    T, S = 4, 64
    video = _video(T=T, H=S, W=S, seed=2).expand(3, -1, -1, -1, -1).contiguous()
    p = sample_motion(3, T, S, S, 4, MotionConfig(), torch.Generator().manual_seed(3))
    _, alpha = _composite(video, _atlas(), p)
    dense = alpha.dense()
    assert dense.shape == (3, 2, T, S, S) and dense.sum() > 0 and dense.max() <= 1
    assert torch.equal(alpha.dense(torch.uint8).float() / 255, dense)
    grid = (T // 2, S // 16, S // 16)
    for thr in (0.0, 0.1, 0.5):  # windowed coverage == the dense path's, token for token
        assert torch.equal(object_tokens(alpha, grid, 2, 16, thr), object_tokens(dense, grid, 2, 16, thr))
    m1 = trajectory_mask(alpha, grid, 2, 16, 0.75, torch.Generator().manual_seed(0))
    m2 = trajectory_mask(dense, grid, 2, 16, 0.75, torch.Generator().manual_seed(0))
    assert torch.equal(m1, m2)
    both = ObjectAlpha.cat([ObjectAlpha.zeros(2, 2, T, S, S), alpha])  # the mixed-mode batch: 2 clean + 3 augmented
    assert both.shape == (5, 2, T, S, S)
    assert both.dense()[:2].sum() == 0 and torch.equal(both.dense()[2:], dense)


def test_motion_modules_import_each_other_in_one_direction_only():
    """No module of smile_video.motion imports a module that imports it back (top-level or inside a function):
    e.g. the Triton kernel does not import `composite`, whose backends it is checked against."""
    import ast
    from pathlib import Path

    import smile_video.motion as motion

    root = Path(motion.__file__).parent
    imports: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names |= {node.module} if node.module else {a.name for a in node.names}
        imports[path.stem] = names - {path.stem}
    both = sorted({tuple(sorted((a, b))) for a, deps in imports.items() for b in deps
                   if a in imports.get(b, set()) and "__init__" not in (a, b)})
    assert both == [], f"import cycles in smile_video.motion: {both}"
