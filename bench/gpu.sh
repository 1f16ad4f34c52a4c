#!/usr/bin/env bash
# The training benchmark with device=cuda, for a machine with an NVIDIA GPU, after `make setup` there
# (a GPU machine without Java or network: bench/portable/build.sh here, bench/portable/run.sh there):
#   bench/gpu.sh                      # writes bench/results/train_cuda.json and bench/results/dl_gpu.json
# Compare with bench/results/train.json (device=cpu) only when both ran on the same machine: run
# `.venv/bin/python bench/train.py --device cpu --output bench/results/train_cpu_same_machine.json` there too.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! nvidia-smi -L; then
  echo "bench/gpu.sh: no NVIDIA GPU visible (nvidia-smi -L failed); run it on a GPU machine" >&2
  exit 2
fi
PYSPARK_PYTHON="$PWD/.venv/bin/python" .venv/bin/python bench/train.py --device cuda "$@"
# The torch network with one GPU per process (NCCL), each backend at 1 and 2 processes (horovod after `make horovod`).
PYSPARK_PYTHON="$PWD/.venv/bin/python" .venv/bin/python bench/dl.py --use-gpu
