#!/usr/bin/env bash
# The GPU benchmark (issue 18 item 4): on a machine with an NVIDIA GPU, from the repository root,
#   bash benchmarks/gpu.sh [OUT.json]
# installs dlnlab with its GPU (CUDA 12 jaxlib) and bench extras into ./.venv-gpu and runs B1, B2, B3 and B8 at the
# quick sizes on the CUDA device (float64); the JSON names the device. Without a GPU it says so and exits 0.
# Budget: about 8 minutes (install ~3, benchmark ~5).
set -euo pipefail
out="${1:-bench-gpu.json}"
python3 -m venv .venv-gpu
. .venv-gpu/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e '.[gpu,bench]'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: not found"
timeout 420 dlnlab bench --device gpu --quick --out "$out"
[ -f "$out" ] && echo "results: $out"
