#!/usr/bin/env bash
# The performance issue's device check: one JSON line (see benchmarks/gpu_check.py), under 10 minutes
# on one H100/H200: rn50 and vitb32 training img/s at 224 px, batch 128, bf16 autocast; MEM generation
# pairs/s with the rn50 surrogate at the paper preset on a 1k-pair synthetic slice (1 outer iteration);
# peak GPU memory of each.
#
# The device machine has PyTorch but not open_clip and no network, so the wheels travel with the tree.
# Prepare them here, once (the .whl folder is git-ignored, so carry it):
#   python -m pip download open_clip_torch ftfy regex wcwidth huggingface_hub safetensors timm tqdm \
#       pyyaml filelock fsspec packaging requests typing_extensions -d .whl --no-deps
#   (and the pure-Python deps of ue-bench that torch's image lacks: pandas, pillow, matplotlib, seaborn, ...)
# then run it with the device tool: run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=600)
# Result: $OUT/gpu_check.json (and the same line on stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/ue-gpu-check}"
mkdir -p "$OUT"
if [ -d .whl ]; then
  python -m pip install --no-index --find-links .whl --no-deps .whl/*.whl >"$OUT/pip.log" 2>&1 || true
fi
python -m pip install --no-index --no-deps --no-build-isolation -e . >>"$OUT/pip.log" 2>&1 \
  || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>/dev/null || true
timeout 560 python benchmarks/gpu_check.py "$@" | tee "$OUT/gpu_check.json"
