"""Throughput and memory of one full pretraining step, per preset.

A step is what `smile pretrain` does per micro-batch: motion infusion, trajectory masking, teacher targets, student
forward and backward, AdamW update. Reports the median over timed steps, clips/s, peak memory, the FLOPs of one step
(counted by torch's FlopCounterMode) and MFU against the peak matmul throughput measured in the same run.

    python benchmarks/train_step.py                         # tiny on CPU (and vit_s, vit_b on CUDA when present)
    python benchmarks/train_step.py --presets vit_b --batch 32 --teacher clip-random --device cuda

`--teacher embedded` uses the shipped EfficientNet-Lite0; `clip-random` a randomly initialised CLIP ViT-B/16 of the
paper's size (same cost as the real one, no weights needed). `--compile` measures each preset eager and then with the
student and the teacher under `torch.compile` (`train.compile=true`, `--compile-mode` = `train.compile_mode`;
reduce-overhead captures CUDA graphs), in the same run, and prints the ratio. `--cpu-bf16` (CPU) measures each preset
in fp32, with the teacher in bf16 (`teacher.dtype=bfloat16`) and with student and teacher in bf16
(`train.precision=bf16`), in the same run: on a CPU with AMX (the `amx_bf16` flag in /proc/cpuinfo) bf16
convolutions and matmuls run on the tile unit.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from smile_video.config import ModelConfig, PretrainJob, load_config
from smile_video.config.sections import COMPILE_MODES
from smile_video.engine.optim import build_adamw
from smile_video.engine.step import MicroStep
from smile_video.models import PretrainModel
from smile_video.objects import default_bank
from smile_video.teachers import build_teacher
from smile_video.teachers.base import resolve_autocast_dtype


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_matmul_flops(device: torch.device, dtype: torch.dtype, n: int, reps: int = 10) -> float:
    """Measured dense matmul throughput (FLOP/s): the reference that MFU is relative to."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def random_clip_teacher(model: ModelConfig) -> torch.nn.Module:
    """CLIP ViT-B/16's visual tower with random weights: the paper teacher's cost without its weights."""
    import timm

    from smile_video.data.normalize import CLIP_MEAN, CLIP_STD
    from smile_video.teachers.vit_teachers import ViTTeacher

    vit = timm.create_model("vit_base_patch16_clip_224", pretrained=False)
    return ViTTeacher(vit, model.grid, model.tubelet_size, mean=CLIP_MEAN, std=CLIP_STD)


TEACHER_WEIGHTS = "float32"  # --teacher-weights: the frozen teacher's weight storage (teacher.weights_dtype)


OVERRIDES: list[str] = []  # --set: config overrides applied after the preset (e.g. model.patch_size=8)


def build_step(preset: str, teacher: str, batch: int, device: torch.device, precision: str, compile: bool = False,
               mode: str = "default", extra: tuple[str, ...] = ()):
    cfg = load_config(PretrainJob, overrides=[f"model.preset={preset}", f"train.precision={precision}", *OVERRIDES,
                                              *extra])
    tea = random_clip_teacher(cfg.model) if teacher == "clip-random" else build_teacher(cfg.teacher, cfg.model)
    tea = tea.to(device)
    # bf16 weights need a teacher that runs in bf16: the bf16 step, or --cpu-bf16's teacher kinds; the fp32
    # reference of --cpu-bf16 keeps its weights in fp32 (reported as "teacher_weights")
    weights = "float32"
    if TEACHER_WEIGHTS == "bfloat16" and resolve_autocast_dtype(cfg.teacher.dtype, device) == torch.bfloat16:
        tea.keep_weights_in(torch.bfloat16)
        weights = "bfloat16"
    cfg.teacher.weights_dtype = weights
    model = PretrainModel(cfg.model, target_dim=tea.dim).to(device)
    opt = build_adamw(model, 1e-4, 0.05, (0.9, 0.95))
    net = torch.compile(model, mode=mode) if compile else model  # as the engine does with train.compile=true
    tea = torch.compile(tea, mode=mode) if compile else tea
    amp = {"fp32": None, "bf16": torch.bfloat16}[precision]
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    step = MicroStep(cfg, net, tea, default_bank("pretrain"), device, amp, scaler)
    m = cfg.model
    video = torch.randint(0, 256, (batch, 3, m.num_frames, m.img_size, m.img_size), dtype=torch.uint8, device=device)

    def run(seed: int) -> None:
        step(video, "augmented", seed)
        with torch.profiler.record_function("smile/optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)

    return cfg, model, run


def bench_preset(preset: str, teacher: str, batch: int, device: torch.device, precision: str, steps: int,
                 peak: float, compile: bool = False, mode: str = "default", extra: tuple[str, ...] = ()) -> dict:
    cfg, model, run = build_step(preset, teacher, batch, device, precision, compile, mode, extra)
    compile_s = 0.0
    if compile:
        t0 = time.perf_counter()
        run(0)  # compile outside the FLOP counter
        sync(device)
        compile_s = time.perf_counter() - t0
    with FlopCounterMode(display=False) as counter:
        run(0)
    flops = counter.get_total_flops()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run(1)
    times = []
    for i in range(steps):
        sync(device)
        t0 = time.perf_counter()
        run(2 + i)
        sync(device)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    if device.type == "cuda":
        memory = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS (Linux: KiB)
    return {"preset": preset, "teacher": teacher, "compile": compile, "compile_mode": mode if compile else None,
            "compile_s": compile_s,
            "device": str(device), "precision": precision, "teacher_dtype": cfg.teacher.dtype,
            "teacher_weights": cfg.teacher.weights_dtype, "batch": batch,
            "frames": cfg.model.num_frames, "size": cfg.model.img_size, "step_s_median": median,
            "clips_per_s": batch / median, "peak_mem_gib": round(memory, 3), "tflops_per_step": flops / 1e12,
            "mfu": flops / median / peak, "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--presets", nargs="*", default=None, help="default: tiny on CPU; vit_s vit_b on CUDA")
    parser.add_argument("--batch", type=int, default=None, help="clips per step (default: 8 on CPU, 32 on CUDA)")
    parser.add_argument("--teacher", default="embedded", choices=["embedded", "clip-random"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--compile", action="store_true",
                        help="also measure with the student and the teacher compiled (train.compile=true)")
    parser.add_argument("--compile-mode", default="default", choices=COMPILE_MODES)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides after the preset, e.g. model.patch_size=8 (the CPU recipe's patches)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="then profile N steps of the first preset: time per phase and the top kernels")
    parser.add_argument("--teacher-weights", default="float32", choices=["float32", "bfloat16"],
                        help="store the teacher's weights in bf16 (teacher.weights_dtype; no per-step casts) "
                             "wherever the teacher runs in bf16 (CUDA; on the CPU, --cpu-bf16's bf16 kinds)")
    parser.add_argument("--cpu-bf16", action="store_true",
                        help="on the CPU, also measure each preset with the teacher in bf16 (teacher.dtype=bfloat16) "
                             "and with the student too (train.precision=bf16), against fp32 in the same run")
    args = parser.parse_args()
    global TEACHER_WEIGHTS
    TEACHER_WEIGHTS = args.teacher_weights
    OVERRIDES[:] = args.set
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          (args.device if args.device != "auto" else "cpu"))
    presets = args.presets or (["vit_s", "vit_b"] if device.type == "cuda" else ["tiny"])
    batch = args.batch or (32 if device.type == "cuda" else 8)
    precision = "bf16" if device.type == "cuda" else "fp32"
    peak = peak_matmul_flops(device, torch.bfloat16 if device.type == "cuda" else torch.float32,
                             8192 if device.type == "cuda" else 1024)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{torch.get_num_threads()} threads"
    print(f"device: {name}; measured peak matmul {peak / 1e12:.2f} TFLOP/s ({precision})")
    if args.cpu_bf16 and device.type != "cpu":
        raise SystemExit("--cpu-bf16 measures the CPU (on CUDA the step is bf16 already)")
    if args.teacher_weights == "bfloat16" and device.type == "cpu" and not args.cpu_bf16:
        raise SystemExit("--teacher-weights bfloat16 needs a teacher that runs in bf16: on the CPU add --cpu-bf16 "
                         "(its bf16 kinds keep the weights in bf16, its fp32 reference in fp32)")
    # (label, train.precision, extra overrides): fp32 first, the reference of the ratios
    kinds = [("", precision, ())]
    if args.cpu_bf16:
        kinds += [(" teacher bf16", "fp32", ("teacher.dtype=bfloat16",)),
                  (" student+teacher bf16", "bf16", ("teacher.dtype=bfloat16",))]
    results = []
    for preset in presets:
        ref = len(results)  # this preset's fp32 eager result
        for label, prec, extra in kinds:
            for compile in [False, True] if args.compile else [False]:
                r = bench_preset(preset, args.teacher, batch, device, prec, args.steps, peak, compile,
                                 args.compile_mode, extra)
                results.append(r)
                name = preset + label + (f" compiled ({args.compile_mode}; {r['compile_s']:.0f} s to compile)"
                                         if compile else "")
                print(f"{name:6s} batch {batch:3d} {r['frames']}x{r['size']}px: {r['clips_per_s']:8.1f} clips/s, "
                      f"step {r['step_s_median'] * 1e3:7.1f} ms (median of {args.steps}), "
                      f"peak mem {r['peak_mem_gib']:.2f} GiB, "
                      f"{r['tflops_per_step']:.3f} TFLOP/step, MFU {r['mfu']:.1%}")
                if compile:
                    print(f"{preset}{label}: compiled / eager step rate "
                          f"{results[-2]['step_s_median'] / r['step_s_median']:.2f}x")
            if label:
                eager = results[-2] if args.compile else results[-1]
                ratio = results[ref]["step_s_median"] / eager["step_s_median"]
                print(f"{preset}{label}: step rate / fp32's {ratio:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "peak_tflops": peak / 1e12, "results": results}, f, indent=2)
    if args.profile:
        profile(presets[0], args.teacher, batch, device, precision, args.profile, args.compile, args.compile_mode)


def profile(preset: str, teacher: str, batch: int, device: torch.device, precision: str, steps: int,
            compile: bool, mode: str = "default") -> None:
    """Profile `steps` steps after two warm-ups: per phase of `MicroStep` (``smile/...`` ranges) the host and
    device time per step, then the kernels (or CPU ops) that take the most device time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    _, _, run = build_step(preset, teacher, batch, device, precision, compile, mode)
    run(0)
    run(1)
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        for i in range(steps):
            with torch.profiler.record_function("smile/whole step"):
                run(2 + i)
        sync(device)
    events = prof.key_averages()

    def device_us(e) -> float:
        return getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0.0)

    print(f"profile of {preset}, {steps} steps (per step; device time of a range = its kernels):")
    for e in sorted((e for e in events if e.key.startswith("smile/")), key=lambda e: e.key):
        print(f"  {e.key:28s} host {e.cpu_time_total / steps / 1e3:8.2f} ms   "
              f"device {device_us(e) / steps / 1e3:8.2f} ms")
    cost = device_us if device.type == "cuda" else (lambda e: e.self_cpu_time_total)
    top = sorted((e for e in events if not e.key.startswith("smile/")), key=cost, reverse=True)[:25]
    print(f"top {'device' if device.type == 'cuda' else 'self CPU'} time (per step, ms; calls per step):")
    for e in top:
        print(f"  {cost(e) / steps / 1e3:8.3f}  {e.count / steps:6.1f}  {e.key[:100]}")



if __name__ == "__main__":
    main()
