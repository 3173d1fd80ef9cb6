#!/usr/bin/env bash
# Issue 12's GPU study in one call on a lent device: benchmarks/fidelity.py --gpu (ViT-S, 16 frames at 112 px,
# SMILE vs random init, seeds 0-2; study.GPU_SCALE), under a time limit.
#
# Here, once: benchmarks/make_devpkgs.sh --av (builds .devpkgs and .whl); then the device tool with
# carry=[".devpkgs", ".whl"] and command `LIMIT=480 bash benchmarks/gpu_study.sh` (extra arguments go to
# fidelity.py, e.g. --seeds 0). The study probes every (seed, variant) before finetuning any and writes results.json
# after each step, so a run cut at LIMIT still brings back every seed's probe cells and what finetuning finished.
# Into $OUT/gpu_study: log.txt, study.json, results.json, fidelity.md and
# .png (when the study finished) and each pretraining's metrics.jsonl (throughput); checkpoints stay on the device.
set -uo pipefail
OUT=${OUT:-runs/gpu_study_out}
LIMIT=${LIMIT:-480}
dst="$OUT/gpu_study"
mkdir -p "$dst"
. "$(dirname "$0")/device_env.sh"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, timm, av; print('torch', torch.__version__, 'timm', timm.__version__, 'av', av.__version__)"
} 2>&1 | tee "$dst/log.txt"
t0=$SECONDS
timeout "$LIMIT" python3 benchmarks/fidelity.py --gpu --out runs/fidelity_gpu "$@" 2>&1 | tee -a "$dst/log.txt"
echo "[fidelity --gpu: exit ${PIPESTATUS[0]}, $((SECONDS - t0)) s]" | tee -a "$dst/log.txt"
for f in study.json results.json fidelity.md fidelity.png; do
  [ -f "runs/fidelity_gpu/$f" ] && cp "runs/fidelity_gpu/$f" "$dst/"
done
for m in runs/fidelity_gpu/pretrain/*/seed*/metrics.jsonl; do
  [ -f "$m" ] && cp "$m" "$dst/$(basename "$(dirname "$(dirname "$m")")")_$(basename "$(dirname "$m")").jsonl"
done
exit 0
