"""Point-in-time join benchmark: lakeforge's as-of join (union, bucket by the lookback, forward fill) against the naive
range join (a left join on the keys with ``observed BETWEEN departs - lookback AND departs``, then the latest match
per row), on the same rows in the same run.

    .venv/bin/python bench/asof.py [--rows 1000000] [--keys 10000 3] [--lookback-hours 1]

Synthetic events: ``--rows`` base rows and as many observations, spread uniformly over 30 days and the keys, written
to Parquet first (not timed). Each join is timed reading the Parquet and writing its result to Spark's ``noop``
sink; the two results are compared (rows matched and the sum of the joined values must agree). The naive join's work
grows with the rows per key squared, so with few keys it runs only while the pairs it compares stay under
``--max-naive-pairs``. Results: bench/results/asof.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import ROOT, THREADS

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from lakeforge.features.asof import as_of_join, range_join  # noqa: E402

DAYS = 30


def generate(spark: SparkSession, rows: int, keys: int, folder: Path, seed: int) -> tuple[str, str]:
    start = F.lit("2024-01-01 00:00:00").cast("timestamp")

    def events(kind: int) -> "DataFrame":  # noqa: F821
        frame = spark.range(rows, numPartitions=8)
        key = (F.abs(F.hash(F.col("id"), F.lit(seed + kind))) % keys).cast("string")
        offset = (F.rand(seed + kind) * DAYS * 86400).cast("long")
        return frame.select(F.col("id"), key.alias("sensor"),
                            (start + F.make_interval(secs=offset)).alias("t"),
                            F.rand(seed + 10 + kind).alias("value"))

    base, obs = str(folder / f"base_{keys}"), str(folder / f"obs_{keys}")
    events(0).select("id", "sensor", F.col("t").alias("departs")).write.mode("overwrite").parquet(base)
    # ingested a random fraction of a second after the event: two observations of one key and second are ordered
    events(1).select("sensor", F.col("t").alias("observed"), "value",
                     (F.col("t") + F.make_interval(secs=F.rand(seed + 20))).alias("ingested")
                     ).write.mode("overwrite").parquet(obs)
    return base, obs


def timed(spark: SparkSession, how, base: str, obs: str, lookback: int) -> dict:
    left, right = spark.read.parquet(base), spark.read.parquet(obs)
    out = how(left, right, left_keys=["sensor"], right_keys=["sensor"], left_time=F.col("departs"),
              right_time="observed", lookback_seconds=lookback, select={"value": "value"}, tie_break="ingested")
    started = time.perf_counter()
    out.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - started
    check = out.agg(F.count("*").alias("rows"), F.count("value").alias("matched"), F.sum("value").alias("sum")).first()
    return {"seconds": round(seconds, 2), "rows": check["rows"], "matched": check["matched"],
            "sum": round(check["sum"] or 0.0, 6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, nargs="+", default=[10_000, 1_000, 100, 3])
    parser.add_argument("--lookback-hours", type=float, default=1.0)
    parser.add_argument("--max-naive-pairs", type=float, default=2e10)
    args = parser.parse_args()
    spark = (SparkSession.builder.master(f"local[{THREADS}]").appName("bench-asof")
             .config("spark.driver.memory", "8g").config("spark.sql.shuffle.partitions", "16")
             .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    lookback = int(args.lookback_hours * 3600)
    results = {"rows": args.rows, "lookback_seconds": lookback, "days": DAYS, "threads": THREADS, "runs": []}
    with tempfile.TemporaryDirectory(prefix="lakeforge-bench-asof-") as tmp:
        # warm-up (the JVM's JIT, Spark's code generation), not recorded: both joins once on small data
        base, obs = generate(spark, 20_000, 100, Path(tmp), seed=1)
        for how in (as_of_join, range_join):
            timed(spark, how, base, obs, lookback)
        for keys in args.keys:
            base, obs = generate(spark, args.rows, keys, Path(tmp), seed=7)
            # pairs the range join's sort-merge on the keys compares: per key (rows / keys) squared
            pairs = keys * (args.rows / keys) ** 2
            run = {"keys": keys, "naive_pairs": pairs, "as_of": timed(spark, as_of_join, base, obs, lookback)}
            if pairs <= args.max_naive_pairs:
                run["range_join"] = timed(spark, range_join, base, obs, lookback)
                same = all(run["as_of"][k] == run["range_join"][k] for k in ("rows", "matched")) and \
                    abs(run["as_of"]["sum"] - run["range_join"]["sum"]) < 1e-6 * max(1.0, run["as_of"]["sum"])
                run["same_answers"] = same
                run["speedup"] = round(run["range_join"]["seconds"] / run["as_of"]["seconds"], 2)
            else:
                run["range_join"] = f"not run: {pairs:.2g} key-equal pairs over --max-naive-pairs"
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
    spark.stop()
    out = ROOT / "bench" / "results" / "asof.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
