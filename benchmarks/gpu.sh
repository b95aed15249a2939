#!/usr/bin/env bash
# The GPU benchmark (issue 18 item 4): on a machine with an NVIDIA GPU, from the repository root,
#   bash benchmarks/gpu.sh [OUT.json]
# installs dlnlab with its GPU (CUDA 12 jaxlib) and bench extras into ./.venv-gpu and runs B1, B2, B3 and B8 in
# float64 and B8 again in float32 ("B8:float32") on the CUDA device, at the quick sizes with B8's scans at GPU sizes
# (bench SIZES["gpu"]: widths to 3000, replicas to 16 384, the engine scan to 65 536; PyTorch on CUDA); the JSON names
# the device. Without a GPU it says so and exits 0. Not yet run on a GPU.
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
