#!/usr/bin/env bash
# Run a lakeforge job with spark-submit:  ./spark-submit.sh JOB [--master M] [--conf K=V] [--dry-run] --env ENV [job args]
# ./spark-submit.sh --help explains the options; the command itself is built by lib/lakeforge/launch.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${LAKEFORGE_PYTHON:-$ROOT/.venv/bin/python}"
if [[ ! -x "$PY" ]]; then
  echo "spark-submit.sh: $PY not found: run 'make setup' first (or point LAKEFORGE_PYTHON at a Python with lakeforge installed)" >&2
  exit 2
fi
exec "$PY" -m lakeforge.launch --root "$ROOT" "$@"
