#!/usr/bin/env bash
# EMR bootstrap action (conf/emr/cluster.yaml): runs on every node before YARN and Spark start, and installs
# Python 3.12 with the lakeforge wheel and its dependencies (xgboost, mlflow, ...) pinned by constraints.txt.
# The wheel is built with LAKEFORGE_SPARK_PROVIDED=1, so pip leaves EMR's own pyspark alone.
#   bootstrap.sh s3://BUCKET/PREFIX/lakeforge-VERSION-py3-none-any.whl [s3://BUCKET/PREFIX/constraints.txt]
set -euo pipefail
WHEEL_URI="${1:?usage: bootstrap.sh s3://.../lakeforge-VERSION-py3-none-any.whl [s3://.../constraints.txt]}"
CONSTRAINTS_URI="${2:-}"
PYTHON="${LAKEFORGE_PYTHON:-/usr/bin/python3.12}"

if [[ ! -x "$PYTHON" ]]; then
  sudo dnf install -y -q python3.12 python3.12-pip   # Amazon Linux 2023 packages
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
aws s3 cp --only-show-errors "$WHEEL_URI" "$work/"
pins=()
if [[ -n "$CONSTRAINTS_URI" ]]; then
  aws s3 cp --only-show-errors "$CONSTRAINTS_URI" "$work/constraints.txt"
  pins=(-c "$work/constraints.txt")
fi
sudo "$PYTHON" -m pip install --quiet --no-warn-script-location "${pins[@]}" "$work"/lakeforge-*.whl
"$PYTHON" -c "import lakeforge, mlflow, xgboost; print('lakeforge', lakeforge.__version__, 'installed')"
