"""The C compositing kernel: the torch backend's result on random motion (uint8 +-1, float, covered pixels,
untouched pixels bit for bit), threads, atlas layouts, its vector paths, and how it is built, cached and replaced
by the torch backend when no compiler is there."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from smile_video.config import MotionConfig
from smile_video.motion import composite, cpu_kernel, sample_motion

pytestmark = pytest.mark.skipif(not cpu_kernel.available(), reason="no C compiler: the torch backend is used")

A = 24
ROOT = str(Path(__file__).resolve().parents[1])  # so a subprocess can import this file as tests.test_cpu_kernel


def _atlas() -> torch.Tensor:
    """(5, 4, A, A): random colours; alpha: a soft disc, random with holes, opaque, a thin bar, 128 everywhere."""
    g = torch.Generator().manual_seed(0)
    atlas = torch.randint(0, 256, (5, 4, A, A), dtype=torch.uint8, generator=g)
    ys, xs = torch.meshgrid(torch.arange(A) + 0.5, torch.arange(A) + 0.5, indexing="ij")
    r = ((xs - A / 2) ** 2 + (ys - A / 2) ** 2).sqrt()
    atlas[0, 3] = ((A / 2 - r).clamp(0, 3) * 85).to(torch.uint8)
    atlas[1, 3][torch.rand(A, A, generator=g) < 0.3] = 0
    atlas[2, 3] = 255
    atlas[3, 3] = 0
    atlas[3, 3, 10:13, 2:22] = 255
    atlas[4, 3] = 128
    return atlas


def _case(seed: int, B=3, T=4, S=56, dtype=torch.uint8):
    g = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (B, 3, T, S, S), dtype=torch.uint8, generator=g)
    if dtype == torch.float32:
        video = video.float() / 255
    cfg = MotionConfig(trajectory="official", num_objects=3, size_min=8, size_max=40)
    return video, sample_motion(B, T, S, S, 5, cfg, g)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_torch_backend(seed):
    video, params = _case(seed)
    out_c, alpha_c = composite(video, _atlas(), params, backend="c")
    out_t, alpha_t = composite(video, _atlas(), params, backend="torch")
    diff = (out_c.int() - out_t.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3  # float rounding only, not a systematic shift
    a_c, a_t = alpha_c.dense(torch.uint8), alpha_t.dense(torch.uint8)
    assert (a_c.int() - a_t.int()).abs().max() <= 1
    covered_c, covered_t = a_c > 0, a_t > 0
    # the covered sets agree except where one backend's alpha is a sliver (< 1/255) at a sprite edge
    assert ((covered_c != covered_t) & (torch.maximum(a_c, a_t) > 1)).sum() == 0
    untouched = ~covered_c.any(1).unsqueeze(1).expand(-1, 3, -1, -1, -1)
    assert torch.equal(out_c[untouched], video[untouched]) and covered_c.sum() > 500
    assert torch.equal(video, _case(seed)[0])  # not in place by default


def test_float_clips_match_torch_backend():
    video, params = _case(3, dtype=torch.float32)
    out_c, alpha_c = composite(video, _atlas(), params, backend="c")
    out_t, _ = composite(video, _atlas(), params, backend="torch")
    assert out_c.dtype == torch.float32 and (out_c - out_t).abs().max() < 1e-4
    untouched = (alpha_c.dense() == 0).all(1).unsqueeze(1).expand(-1, 3, -1, -1, -1)
    assert torch.equal(out_c[untouched], video[untouched])


def test_threads_layouts_and_inplace_give_the_same_bytes():
    video, params = _case(4, B=5)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, alpha_one = composite(video, _atlas(), params, backend="c")
        torch.set_num_threads(3)
        three, alpha_three = composite(video, _atlas(), params, backend="c")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, three) and torch.equal(alpha_one.dense(torch.uint8), alpha_three.dense(torch.uint8))
    channels_last = _atlas().permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # as ObjectBank.atlas
    assert torch.equal(composite(video, channels_last, params, backend="c")[0], one)
    target = video.clone()
    out, _ = composite(target, _atlas(), params, backend="c", inplace=True)
    assert out is target and torch.equal(target, one)
    strided = video.transpose(3, 4).contiguous().transpose(3, 4)  # not contiguous: copied in and back
    out, _ = composite(strided, _atlas(), params, backend="c", inplace=True)
    assert out is strided and torch.equal(out, one)


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    if "PYTHONPATH" in env and os.environ.get("PYTHONPATH"):  # keep the caller's (an uninstalled package on it)
        env["PYTHONPATH"] += os.pathsep + os.environ["PYTHONPATH"]
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


_COMPARE = """
    import torch, warnings
    from smile_video.motion import composite, cpu_kernel
    from tests.test_cpu_kernel import _atlas, _case
    video, params = _case(5)
    out_t, _ = composite(video, _atlas(), params, backend="torch")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, alpha = composite(video, _atlas(), params)  # auto
    print("available", cpu_kernel.available(), "warned", len(caught), "maxdiff",
          int((out.int() - out_t.int()).abs().max()), flush=True)
    print("path", cpu_kernel.library_path())
"""


@pytest.mark.parametrize("flags", ["-mno-avx512f", "-mno-avx512f -mno-avx2 -mno-fma"], ids=["avx2", "scalar"])
def test_other_vector_paths_match(flags, tmp_path):
    """The AVX2 and plain-C paths (this machine may pick AVX-512) give the torch backend's result too."""
    proc = _run(_COMPARE, SMILE_VIDEO_CFLAGS=flags, SMILE_VIDEO_CACHE=str(tmp_path), PYTHONPATH=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "available True warned 0 maxdiff 1" in proc.stdout or "available True warned 0 maxdiff 0" in proc.stdout


def test_no_compiler_falls_back_to_torch_with_one_warning(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = _run(_COMPARE + """
    try:
        composite(video, _atlas(), params, backend="c")
    except ValueError as e:
        print("error:", e)
    """, PATH=str(empty), CC="", SMILE_VIDEO_CACHE=str(tmp_path), PYTHONPATH=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "available False" in proc.stdout and "maxdiff 0" in proc.stdout  # the torch backend, exactly
    assert proc.stderr.count("the C compositing kernel is not available (RuntimeError: no C compiler") == 1
    assert "error: composite: backend 'c' is not available" in proc.stdout and "no C compiler" in proc.stdout


def test_built_once_cached_and_rebuilt_when_damaged(tmp_path):
    env = {"SMILE_VIDEO_CACHE": str(tmp_path), "PYTHONPATH": ROOT}
    first = _run(_COMPARE, **env)
    assert first.returncode == 0 and "available True" in first.stdout, first.stderr
    path = first.stdout.split("path ")[1].strip()
    assert path.startswith(str(tmp_path)) and os.path.exists(path)
    stamp = os.stat(path).st_mtime_ns
    second = _run(_COMPARE, **env)
    assert "available True" in second.stdout and os.stat(path).st_mtime_ns == stamp  # loaded, not rebuilt
    with open(path, "wb") as f:
        f.write(b"not a shared library")
    third = _run(_COMPARE, **env)
    assert "available True warned 0" in third.stdout, third.stderr
    assert os.path.getsize(path) > 1000  # rebuilt in place
    assert [p.name for p in tmp_path.joinpath("kernels").iterdir()] == [os.path.basename(path)]  # no temp files


def test_union_patch_sums_match_torch():
    """The C reduction behind trajectory masking equals the torch one, byte sums exactly, with overlapping objects,
    pieces from both backends, a concatenated batch and any thread count."""
    from smile_video.motion import ObjectAlpha

    video, params = _case(6, B=4, T=4, S=64)
    _, alpha_c = composite(video, _atlas(), params, backend="c")
    _, alpha_t = composite(video, _atlas(), params, backend="torch")
    both = ObjectAlpha.cat([ObjectAlpha.zeros(2, 3, 4, 64, 64), alpha_c, alpha_t])
    threads = torch.get_num_threads()
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            for patch in (8, 16):
                fast, slow = both.patch_sums(patch), both.patch_sums(patch, kernel="torch")
                assert fast.dtype == torch.int32 and fast.shape == (10, 4, 64 // patch, 64 // patch)
                assert torch.equal(fast, slow) and fast[2:].sum() > 0 and fast[:2].sum() == 0
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(ValueError, match="not divisible"):
        both.patch_sums(10)
