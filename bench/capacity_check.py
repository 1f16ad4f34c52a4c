"""One more measured point for the capacity model (docs/capacity.md): lakeforge's full ingest of the flights repeated
``--copies`` times on a ``local-cluster`` master with 2 executors of 1 core (separate executor JVMs, shuffles between
them), against what bench/capacity.py's fitted line predicts for that many rows on 2 vCPUs.

    .venv/bin/python bench/capacity_check.py [--copies 9] [--workdir /tmp/lakeforge-capacity]

Writes bench/results/capacity_check.json, which bench/capacity.py reports under "Checked against".
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "bench"))

from pydantic import SecretStr  # noqa: E402
from capacity import stages  # noqa: E402
from common import bench_session  # noqa: E402
from ingest import make_csv  # noqa: E402
from lakeforge.config import MlflowSettings, StorageSettings, load_settings  # noqa: E402
from lakeforge.ingest import ingest_source  # noqa: E402

MASTER = "local-cluster[2,1,6144]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=9)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lakeforge-capacity"))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "capacity_check.json")
    args = parser.parse_args()

    base = load_settings("local", ROOT / "conf")
    base = base.model_copy(update={"spark": base.spark.model_copy(update={  # as bench/ingest.py
        "conf": {**base.spark.conf, "spark.sql.shuffle.partitions": "8"}})})
    spark = bench_session(base, driver_memory="4g", master=MASTER)
    try:
        data = args.workdir / "data" / f"flights_x{args.copies}.csv"
        rows = make_csv(data, args.copies)
        small = args.workdir / "data" / "flights_x1.csv"
        make_csv(small, 1)
        # warm-up: a tiny ingest, so that the timing does not pay for loading Delta's classes in the executors
        for name in ("warmup", "run"):
            run = args.workdir / name
            shutil.rmtree(run, ignore_errors=True)
            settings = base.model_copy(update={
                "storage": StorageSettings(root=str(run / "lakehouse"), landing=str(args.workdir / "data")),
                "mlflow": MlflowSettings(tracking_uri=f"sqlite:///{run}/mlflow.db", experiment="capacity"),
                "pii_key": SecretStr("benchmark-key")})
            start = time.perf_counter()
            result = ingest_source(spark, settings, "flights", str(data if name == "run" else small))
            seconds = time.perf_counter() - start
        assert result.silver_rows == rows, (result, rows)
    finally:
        spark.stop()
    ingest = next(s for s in stages()[0] if s.name.startswith("ingest"))
    fixed, slope = ingest.fit()
    predicted = fixed + slope * rows
    record = {"master": MASTER, "stage": "ingest", "rows": rows, "measured_s": round(seconds, 2),
              "predicted_s": round(predicted, 2), "measured_over_predicted": round(seconds / predicted, 2)}
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
