#!/usr/bin/env bash
# The training benchmark with device=cuda, for a machine with an NVIDIA GPU, after `make setup` there:
#   bench/gpu.sh                      # writes bench/results/train_cuda.json
# Compare with bench/results/train.json (device=cpu) only when both ran on the same machine: run
# `.venv/bin/python bench/train.py --device cpu --output bench/results/train_cpu_same_machine.json` there too.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! nvidia-smi -L; then
  echo "bench/gpu.sh: no NVIDIA GPU visible (nvidia-smi -L failed); run it on a GPU machine" >&2
  exit 2
fi
PYSPARK_PYTHON="$PWD/.venv/bin/python" .venv/bin/python bench/train.py --device cuda "$@"
