#!/usr/bin/env bash
# EMR bootstrap action (conf/emr/cluster.yaml): runs on every node before YARN and Spark start, and installs
# Python 3.12 with the lakeforge wheel and its dependencies (xgboost, mlflow, ...) pinned by the Spark 3.5 line's
# constraints-spark35.txt. EMR 7.13 (Amazon Linux 2023) has Python 3.9 and 3.11; AL2023's python3.12 and
# python3.12-pip packages bring 3.12, which lakeforge needs. The wheel is built with LAKEFORGE_SPARK_PROVIDED=1 (no
# pyspark or delta-spark requirement), so EMR's own pyspark and Delta stay the ones the jobs use.
#   bootstrap.sh s3://BUCKET/PREFIX/lakeforge-VERSION-py3-none-any.whl [s3://BUCKET/PREFIX/constraints-spark35.txt]
set -euo pipefail
WHEEL_URI="${1:?usage: bootstrap.sh s3://.../lakeforge-VERSION-py3-none-any.whl [s3://.../constraints-spark35.txt]}"
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
if "$PYTHON" -m pip show --quiet pyspark >/dev/null 2>&1; then
  echo "bootstrap.sh: a pyspark was installed for $PYTHON; the jobs must use EMR's own Spark (build the wheel with" \
       "LAKEFORGE_SPARK_PROVIDED=1)" >&2
  exit 1
fi
"$PYTHON" -c "import lakeforge, mlflow, xgboost; print('lakeforge', lakeforge.__version__, 'installed')"
