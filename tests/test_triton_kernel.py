"""The Triton compositing kernel against the torch backend: same pixels (+-1 on uint8), same covered pixels,
untouched pixels bit for bit, float clips, paste order. Without a GPU it runs in Triton's interpreter, which must
be switched on before triton is imported, hence a subprocess; with CUDA the real kernel runs at 224 px too."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from unittest import mock

import pytest
import torch

from smile_video.motion import MotionParams, ObjectAlpha
from smile_video.motion.windows import plan_windows

A = 16  # atlas cell side

needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")


def _atlas() -> torch.Tensor:
    """Row 0: red square, opaque inside a soft alpha ramp; row 1: a disc of alpha 200 with a random colour per
    texel; row 2: random colours and random alpha (a quarter of the texels transparent); row 3: opaque green."""
    g = torch.Generator().manual_seed(0)
    atlas = torch.zeros(4, 4, A, A, dtype=torch.uint8)
    ramp = torch.minimum(torch.arange(A), torch.arange(A).flip(0)).clamp(max=4) * 60  # 0 .. 240 to the centre
    atlas[0, 0] = 255
    atlas[0, 3] = torch.minimum(ramp.view(A, 1), ramp.view(1, A)).clamp(max=255).to(torch.uint8)
    atlas[0, 3, 5:11, 5:11] = 255
    ys, xs = torch.meshgrid(torch.arange(A) + 0.5, torch.arange(A) + 0.5, indexing="ij")
    disc = ((xs - A / 2) ** 2 + (ys - A / 2) ** 2) < (A / 2 - 1) ** 2
    atlas[1, :3] = torch.randint(0, 256, (3, A, A), dtype=torch.uint8, generator=g)
    atlas[1, 3] = disc.to(torch.uint8) * 200
    atlas[2] = torch.randint(0, 256, (4, A, A), dtype=torch.uint8, generator=g)
    atlas[2, 3][torch.rand(A, A, generator=g) < 0.25] = 0
    atlas[3, 1], atlas[3, 3] = 255, 255
    return atlas


def _random_params(B: int, K: int, T: int, H: int, W: int, seed: int) -> MotionParams:
    """Random sprites (rows 0-2), centres from a bit outside the frame to inside, any rotation, scales 0.5-2."""
    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor([-0.2 * W, -0.2 * H])
    centers = lo + torch.rand(B, K, T, 2, generator=g) * torch.tensor([1.4 * W, 1.4 * H])
    return MotionParams(object_ids=torch.randint(0, 3, (B, K), generator=g), centers=centers,
                        angles=torch.rand(B, K, T, generator=g) * 360 - 180,
                        scales=0.5 + 1.5 * torch.rand(B, K, T, generator=g),
                        sizes=(0.15 + 0.45 * torch.rand(B, K, 1, generator=g)).expand(B, K, 2) * min(H, W))


def _blend(video: torch.Tensor, atlas: torch.Tensor, params: MotionParams) -> tuple[torch.Tensor, torch.Tensor]:
    """The triton kernel on a copy of `video`: (video, (B, K, T, H, W) uint8 alpha)."""
    from smile_video.motion import triton_kernel

    comp = importlib.import_module("smile_video.motion.composite")  # the module (the attribute is the function)
    B, _, T, H, W = video.shape
    plan = plan_windows(params.to(video.device), atlas.shape[-1], H, W, step=8)
    out = video.clone()
    real_empty = torch.empty
    with mock.patch.object(torch, "empty", lambda *a, **kw: real_empty(*a, **kw).fill_(77)):  # every byte written?
        flat = triton_kernel.blend_windows(out, atlas, plan)
    assert flat.shape == (plan.alpha_size,) and flat.dtype == torch.uint8
    alpha = ObjectAlpha.zeros(B, params.num_objects, T, H, W, video.device)
    comp._pieces_from_flat(plan, flat, alpha)
    return out, alpha.dense(torch.uint8)


def _check_against_torch(video: torch.Tensor, atlas: torch.Tensor, params: MotionParams) -> None:
    """Triton vs torch on a uint8 clip and on the same clip as float32."""
    comp = importlib.import_module("smile_video.motion.composite")
    out, alpha = _blend(video, atlas, params)
    ref, ref_alpha = comp.composite(video, atlas, params, backend="torch")
    ref_alpha = ref_alpha.dense(torch.uint8)
    assert alpha.sum() > 0, "no object visible: the check would be empty"
    assert (out.int() - ref.int()).abs().max() <= 1
    assert (out != ref).sum() <= max(4, 3 * (ref_alpha > 0).sum() // 100)  # +-1 is rare, not systematic
    assert (alpha.int() - ref_alpha.int()).abs().max() <= 1
    # Covered pixels: the same set, except where the sampled alpha is so small (< 1/255, stored as 1) that float
    # rounding of the texel coordinates (grid_sample's normalised grid vs our direct affine map) puts a bilinear
    # weight at exactly 0 in one backend and at ~1e-6 in the other: a 0/1 disagreement only, and rare.
    differ = (alpha > 0) != (ref_alpha > 0)
    assert (torch.maximum(alpha, ref_alpha)[differ] == 1).all()
    assert differ.sum() <= max(4, (ref_alpha > 0).sum() // 500)
    untouched = (alpha.sum(1) == 0).unsqueeze(1).expand_as(video)  # (B, 3, T, H, W): no object's alpha here
    assert torch.equal(out[untouched], video[untouched])
    assert not torch.equal(out, video)

    video_f = video.float() / 255
    out_f, alpha_f = _blend(video_f, atlas, params)
    ref_f, _ = comp.composite(video_f, atlas, params, backend="torch")
    assert out_f.dtype == torch.float32 and torch.equal(alpha_f, alpha)
    assert (out_f - ref_f).abs().max() <= 1e-4
    assert torch.equal(out_f[untouched], video_f[untouched])


def _check_slot_order() -> None:
    """An opaque green square in slot 1 over an opaque red one in slot 0: green wins where they overlap."""
    g = torch.Generator().manual_seed(1)
    video = torch.randint(0, 256, (1, 3, 1, 40, 40), dtype=torch.uint8, generator=g)
    atlas = torch.zeros(2, 4, A, A, dtype=torch.uint8)
    atlas[0, 0], atlas[0, 3], atlas[1, 1], atlas[1, 3] = 255, 255, 255, 255
    centers = torch.tensor([[18.0, 18.0], [24.0, 24.0]]).view(1, 2, 1, 2)
    params = MotionParams(object_ids=torch.tensor([[0, 1]]), centers=centers, angles=torch.zeros(1, 2, 1),
                          scales=torch.ones(1, 2, 1), sizes=torch.full((1, 2, 2), 12.0))
    out, alpha = _blend(video, atlas, params)
    assert alpha[0, 0, 0, 21, 21] == 255 and alpha[0, 1, 0, 21, 21] == 255  # both cover the overlap
    assert out[0, :, 0, 21, 21].tolist() == [0, 255, 0]  # green (k = 1) on top
    assert out[0, :, 0, 14, 14].tolist() == [255, 0, 0]  # red alone
    assert alpha[0, 1, 0, 14, 14] == 0 and torch.equal(out[0, :, 0, 2, 2], video[0, :, 0, 2, 2])


def _check_rounding_and_nothing_visible() -> None:
    """uint8 blends round: 2 (1 - a) + 255 a = 128.996 -> 129 (truncation: 128); no visible object: no change."""
    video = torch.full((1, 3, 1, 16, 16), 2, dtype=torch.uint8)
    atlas = torch.zeros(1, 4, A, A, dtype=torch.uint8)
    atlas[0, :3], atlas[0, 3] = 255, 128
    params = MotionParams(object_ids=torch.tensor([[0]]), centers=torch.tensor([8.0, 8.0]).view(1, 1, 1, 2),
                          angles=torch.zeros(1, 1, 1), scales=torch.ones(1, 1, 1), sizes=torch.full((1, 1, 2), 12.0))
    out, alpha = _blend(video, atlas, params)
    assert alpha[0, 0, 0, 8, 8] == 128 and out[0, :, 0, 8, 8].tolist() == [129, 129, 129]
    params.centers.fill_(-50.0)
    out, alpha = _blend(video, atlas, params)
    assert alpha.sum() == 0 and torch.equal(out, video)


def _interpreted_checks() -> None:
    """Run in a subprocess with TRITON_INTERPRET=1: small CPU inputs through the interpreted kernel."""
    from smile_video.motion import triton_kernel

    assert triton_kernel.available()
    B, K, T, H, W = 2, 2, 3, 48, 48
    video = torch.randint(0, 256, (B, 3, T, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    params = _random_params(B, K, T, H, W, seed=3)
    atlas = _atlas()
    _check_against_torch(video, atlas, params)  # contiguous atlas: the used cells are gathered
    _check_against_torch(video, atlas.contiguous(memory_format=torch.channels_last), params)  # used as it is
    _check_slot_order()
    _check_rounding_and_nothing_visible()
    _check_self_check()


def _check_self_check() -> None:
    """`triton_verified` passes for the real kernel and fails (warning once, torch from then on) for a broken one."""
    import warnings

    from smile_video.motion import triton_kernel

    composite_mod = importlib.import_module("smile_video.motion.composite")  # the module (the package exports the fn)

    cpu = torch.device("cpu")
    assert composite_mod.triton_verified(cpu)
    real = triton_kernel.blend_windows
    composite_mod._TRITON_CHECKED.clear()
    try:  # a kernel that forgets to blend
        triton_kernel.blend_windows = lambda video, atlas, plan: real(video.clone(), atlas, plan)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert not composite_mod.triton_verified(cpu) and not composite_mod.triton_verified(cpu)
        assert len(caught) == 1 and "failed its self-check" in str(caught[0].message)
        assert "max difference" in composite_mod._TRITON_CHECKED["cpu"]
    finally:
        triton_kernel.blend_windows = real
        composite_mod._TRITON_CHECKED.clear()


def _triton_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(x) for x in version("triton").split(".")[:2] if x.isdigit())


@needs_triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is not None and _triton_version() < (3, 8),
                    reason="Triton < 3.8's interpreter cannot run the kernel's loop (the compiled kernel is tested "
                           "on CUDA)")
def test_triton_kernel_matches_torch_in_interpreter():
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('_ttk', {os.path.abspath(__file__)!r})\n"
            "mod = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(mod)\n"
            "mod._interpreted_checks()\n")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_kernel_matches_torch_on_cuda():
    B, K, T, H, W = 4, 2, 16, 224, 224
    video = torch.randint(0, 256, (B, 3, T, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    atlas = _atlas().repeat(1, 1, 4, 4).contiguous(memory_format=torch.channels_last)  # 64 px cells
    _check_against_torch(video.cuda(), atlas.cuda(), _random_params(B, K, T, H, W, seed=5))
    from smile_video.motion import resolve_backend
    from smile_video.motion.composite import triton_verified

    assert triton_verified(torch.device("cuda")) and resolve_backend("auto", torch.device("cuda")) == "triton"
