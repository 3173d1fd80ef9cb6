"""Fused CPU compositing: a small C kernel (``csrc/blend.c``) compiled on first use and called through ctypes.

The kernel samples, blends and writes every window of a `WindowPlan` in one pass over only the pixels a sprite
can cover (per row, the span inside the sprite's octagonal non-transparent bounds, solved in closed form). Its
inner loop takes 16 pixels at a time with AVX-512 or 8 with AVX2 (hand-written intrinsics: texel gathers, bilinear
weights, blend), else a plain C loop the compiler vectorises; ``-O3 -march=native`` picks what the CPU has. Its
result is the torch backend's up to float rounding (+-1 on a uint8 channel).

Building: the first call compiles the file with the system C compiler (``$CC``, else ``cc``, ``gcc``, ``clang``)
into ``$SMILE_VIDEO_CACHE/kernels`` (default ``~/.cache/smile-video/kernels``), keyed by the source, the flags
(plus ``$SMILE_VIDEO_CFLAGS``, if set) and the CPU, written atomically; later processes load the cached library.
No compiler (or a failed build) is not an error: `available()` is False, a warning says why once, and
`composite` falls back to the torch backend.

Threads: the clips are split into contiguous chunks, one per thread of ``torch.get_num_threads()`` (at most one
per clip), each a ctypes call (which releases the GIL); the result does not depend on the thread count.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..cache import cache_dir
from .windows import WindowPlan, texel_cells

__all__ = ["available", "blend_windows", "union_patch_sums", "library_path", "build_error"]

_SOURCE = Path(__file__).with_name("csrc") / "blend.c"
_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC", "-std=c99"]
_NATIVE = ["-march=native"]
_lock = threading.Lock()
_state: dict[str, object] = {}  # "lib": the loaded CDLL, or "error": why there is none
_pool: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (pid, threads): a forked child makes its own


def _cpu_id() -> str:
    """What -march=native depends on: the CPU model and its feature flags (Linux), else the platform."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f.read().splitlines() if ln.startswith(("model name", "flags", "Features"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.platform() + platform.processor()


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _extra_flags() -> list[str]:
    """``$SMILE_VIDEO_CFLAGS``: appended to the compiler flags (e.g. ``-mno-avx512f`` to use the AVX2 path)."""
    return os.environ.get("SMILE_VIDEO_CFLAGS", "").split()


def library_path() -> Path | None:
    """Where the compiled kernel is (or would be) cached; None without a C compiler."""
    cc = _compiler()
    if cc is None:
        return None
    flags = " ".join(_FLAGS + _NATIVE + _extra_flags())
    key = hashlib.sha256(b"\0".join([_SOURCE.read_bytes(), flags.encode(), cc.encode(), _cpu_id().encode(),
                                     platform.machine().encode()])).hexdigest()[:16]
    return cache_dir() / "kernels" / f"blend-{key}.so"


def _build(path: Path, cc: str) -> None:
    """Compile to a temporary file beside `path`, then rename (atomic; concurrent builders are harmless)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        errors = []
        for extra in (_NATIVE, []):  # some compilers reject -march=native
            cmd = [cc, *_FLAGS, *extra, *_extra_flags(), str(_SOURCE), "-o", tmp]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if proc.returncode == 0:
                os.replace(tmp, path)
                return
            errors.append(proc.stderr.strip()[-800:])
        raise RuntimeError(f"{cc} failed to compile {_SOURCE}: {errors[-1]}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _open(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    fn = lib.smile_blend_frames
    fn.restype = None
    p, i, n = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
    fn.argtypes = [p, i, n, n, n, p, i, p, p, i, n, n] + [p] * 15
    sums = lib.smile_union_patch_sums
    sums.restype = None
    sums.argtypes = [n, n, n, n, i] + [p] * 8
    return lib


def _load() -> ctypes.CDLL | None:
    with _lock:
        if "lib" in _state or "error" in _state:
            return _state.get("lib")  # type: ignore[return-value]
        try:
            cc = _compiler()
            if cc is None:
                raise RuntimeError("no C compiler found ($CC, cc, gcc or clang)")
            path = library_path()
            assert path is not None
            if not path.exists():
                _build(path, cc)
            try:
                lib = _open(path)
            except OSError:  # a damaged cache file: build it again, once
                _build(path, cc)
                lib = _open(path)
            _state["lib"] = lib
        except Exception as exc:  # noqa: BLE001 - any failure means "use the torch backend", said once
            _state["error"] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"smile_video: the C compositing kernel is not available ({_state['error']}); "
                          "using the slower torch backend", RuntimeWarning, stacklevel=3)
            return None
        return lib


def available() -> bool:
    """Whether the C kernel is built and loadable (builds it on first call)."""
    return _load() is not None


def _library() -> ctypes.CDLL:
    """The loaded kernel, or a RuntimeError saying why there is none."""
    lib = _load()
    if lib is None:
        raise RuntimeError(f"the C compositing kernel is not available: {build_error()}")
    return lib


def build_error() -> str | None:
    """Why the kernel is not available (None when it is, or before the first attempt)."""
    return _state.get("error")  # type: ignore[return-value]


def _executor(n: int) -> ThreadPoolExecutor:
    key = (os.getpid(), n)  # after fork() the parent's worker threads do not exist in the child
    if key not in _pool:
        _pool[key] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="smile-blend")
    return _pool[key]


def blend_windows(video: torch.Tensor, atlas: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
    """Composite every window of `plan` into `video` in place; returns the flat uint8 alpha (``plan.alpha_size``).

    video: (B, 3, T, H, W) contiguous CPU uint8 or float32; atlas: (N, 4, A, A) CPU uint8, ideally channels-last
    in memory (as `ObjectBank.atlas` returns it; otherwise the plan's sprites are gathered into that layout).
    """
    lib = _library()
    if video.device.type != "cpu" or not video.is_contiguous() or video.dtype not in (torch.uint8, torch.float32):
        raise ValueError(f"blend_windows: video must be a contiguous CPU uint8 or float32 tensor, got "
                         f"{video.dtype} on {video.device}")
    alpha = torch.from_numpy(np.zeros(plan.alpha_size, dtype=np.uint8))  # calloc: zero pages cost nothing
    if len(plan) == 0:
        return alpha
    B, _, T, H, W = video.shape
    cells, sprite, bounds = texel_cells(atlas.cpu(), plan.sprite)
    cells = cells.contiguous()
    longs = [x.to(torch.int64).contiguous() for x in (plan.frame_windows, plan.b, plan.t, plan.x0, plan.y0, plan.h,
                                                      plan.w, sprite)]
    floats = [x.to(torch.float32).contiguous() for x in (plan.u0, plan.ux, plan.uy, plan.v0, plan.vx, plan.vy)]
    offset, bounds = plan.offset.to(torch.int64).contiguous(), bounds.contiguous()
    fw = longs[0]
    K = fw.shape[1]
    head = [video.data_ptr(), int(video.dtype == torch.float32), T, H, W, cells.data_ptr(), cells.shape[1],
            bounds.data_ptr(), fw.data_ptr(), K]
    tail = [x.data_ptr() for x in longs[1:]] + [x.data_ptr() for x in floats] + [offset.data_ptr(),
                                                                                 alpha.data_ptr()]
    # whole clips per chunk: a clip's frames share a sprite, and chunks never share a frame
    _run([(lib.smile_blend_frames, *head, a * T, b * T, *tail) for a, b in _chunks(B)])
    return alpha


def _chunks(n_items: int) -> list[tuple[int, int]]:
    """Contiguous chunks of range(n_items), one per thread of ``torch.get_num_threads()`` (at most one per item)."""
    threads = max(1, min(torch.get_num_threads(), n_items))
    edges = [round(n_items * c / threads) for c in range(threads + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _run(calls: list[tuple]) -> None:
    """Run ``fn(*args)`` for each (fn, *args) in `calls`: inline for one, on the thread pool for several."""
    if len(calls) == 1:
        calls[0][0](*calls[0][1:])
        return
    for job in [_executor(len(calls)).submit(*call) for call in calls]:
        job.result()


def union_patch_sums(shape: tuple[int, ...], pieces: list, patch: int) -> torch.Tensor:
    """Per-(clip, frame, patch) sums of the union (max over objects) of alpha windows: (B, T, H/P, W/P) int32.

    shape: (B, K, T, H, W) of an `ObjectAlpha`; pieces: its CPU `AlphaPiece` list; H and W divisible by `patch`.
    The same numbers as summing ``ObjectAlpha.union()`` over patches, without building the full-size union.
    """
    lib = _library()
    B, _, T, H, W = shape
    frames, y0, x0, hs, ws, data, keep = [], [], [], [], [], [], []
    for p in pieces:
        a = p.a.contiguous()
        keep.append(a)  # alive during the call
        n, h, w = a.shape
        frames.append(p.b * T + p.t)
        y0.append(p.y0)
        x0.append(p.x0)
        hs.append(torch.full((n,), h, dtype=torch.int64))
        ws.append(torch.full((n,), w, dtype=torch.int64))
        data.append(a.data_ptr() + torch.arange(n, dtype=torch.int64) * (h * w))
    out = torch.empty(B * T, H // patch, W // patch, dtype=torch.int32)
    frame = torch.cat(frames) if frames else torch.empty(0, dtype=torch.int64)
    order = torch.argsort(frame, stable=True)
    first = torch.zeros(B * T + 1, dtype=torch.int64)
    first[1:] = torch.cumsum(torch.bincount(frame, minlength=B * T), 0)
    cols = [torch.cat(c)[order].to(torch.int64).contiguous() if c else torch.empty(0, dtype=torch.int64)
            for c in (y0, x0, hs, ws, data)]
    chunks = _chunks(B * T)
    scratch = torch.empty(len(chunks), H * W, dtype=torch.uint8)  # one frame per thread
    _run([(lib.smile_union_patch_sums, a, b, H, W, patch, first.data_ptr(), *(c.data_ptr() for c in cols),
           scratch[i].data_ptr(), out.data_ptr()) for i, (a, b) in enumerate(chunks)])
    return out.view(B, T, H // patch, W // patch)
