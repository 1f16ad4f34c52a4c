"""Scoring benchmark: lakeforge's scoring job (read Delta, score, write the predictions Delta table) against the
single-process limit on the same rows and model (pyarrow reads the table's Parquet files, xgboost
``inplace_predict``, pyarrow writes Parquet).

    .venv/bin/python bench/score.py [--rows 100000 1000000 3000000] [--batch-rows 1000 10000 50000] [--repeats 3]

The model is the demo's (trained here by lakeforge on the bundled data, 200 trees, depth 6, no search); the input
is the demo's gold table repeated with shifted years (keys stay unique) to each size. Both prediction paths
(``transform``: the pipeline's own Spark transform; ``map_in_arrow``: booster on Arrow batches) are timed at each
Arrow batch size. Each measurement is taken ``--repeats`` times in a row in the same session (the JVM's code and the
Python workers warm up over the first runs): the first and the best are both reported, with a ratio for each (the
best against the single process's best: a warm, long-running session; the first against its first: only the very
first configuration's first run is a cold session, later ones start warmer). Beside them, the bound no scoring job
on these cores can beat: the job's Spark floor (the same read, output columns and Delta write with no model) plus the
booster's own ``inplace_predict`` time. Results: bench/results/score.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from basics import timed
from common import ROOT, THREADS, bench_session, bench_settings, demo_gold

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from lakeforge.config import SearchSettings  # noqa: E402
from lakeforge.score import score_table  # noqa: E402
from lakeforge.train import entity_key, train_model  # noqa: E402


def build_input(spark, gold_table: str, rows: int, target: str) -> None:
    """The gold rows repeated with the year shifted by the copy number, cut to ``rows``."""
    gold = spark.read.format("delta").load(gold_table)
    base = gold.count()
    copies = -(-rows // base)
    frame = gold.withColumn("_copy", F.explode(F.sequence(F.lit(0), F.lit(copies - 1))))
    frame = frame.withColumn("year", F.col("year") + F.col("_copy") * 10).drop("_copy").limit(rows)
    frame.repartition(THREADS).write.format("delta").mode("overwrite").save(target)


def single_process(spark, model, key, source: str, out_dir: Path, threshold: float,
                   repeats: int) -> tuple[list[float], list[float]]:
    """pyarrow read -> categorical codes as StringIndexer made them -> inplace_predict -> pyarrow write: each run's
    seconds, and the seconds of its ``inplace_predict`` alone."""
    *indexers, assembler, xgb_model = model.stages
    labels = {}
    for indexer in indexers:
        for column, values in zip(indexer.getInputCols(), indexer.labelsArray):
            labels[column] = values
    booster = xgb_model.get_booster()
    booster.set_param({"nthread": THREADS})
    files = spark.read.format("delta").load(source).inputFiles()
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    predicting: list[float] = []  # the booster's share of each run

    def run() -> None:
        table = pq.read_table([f.removeprefix("file:") for f in files])
        columns = []
        for name in assembler.getInputCols():
            if name.endswith("__idx"):
                raw = name[: -len("__idx")]
                lookup = pa.array(labels[raw])
                index = pc.index_in(table[raw], value_set=lookup)
                columns.append(pc.fill_null(index, len(labels[raw])).to_numpy(zero_copy_only=False).astype(np.float32))
            else:
                columns.append(table[name].cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float32))
        x = np.column_stack(columns)
        start = time.perf_counter()
        probability = booster.inplace_predict(x, missing=np.nan)
        predicting.append(time.perf_counter() - start)
        result = table.select(key).append_column("probability", pa.array(probability.astype(np.float64)))
        result = result.append_column("prediction", pa.array((probability >= threshold).astype(np.int32)))
        pq.write_table(result, out_dir / "predictions.parquet")

    return [timed(run)[0] for _ in range(repeats)], predicting


def spark_floor(spark, key, label: str, source: str, out_dir: Path, repeats: int) -> list[float]:
    """The scoring job's shape with no model: read the Delta input, the same output and lineage columns (a seeded
    random score, as incompressible as real ones), write a new Delta table. What Spark and Delta cost alone."""
    runs = []
    for run in range(repeats):
        out = out_dir / f"floor_{run}"
        frame = spark.read.format("delta").load(source)
        score = F.rand(seed=run)
        rows = frame.select(
            *key, score.alias("probability"), (score >= 0.5).cast("int").alias("prediction"),
            F.col(label).cast("int").alias("label"), F.lit("model").alias("model_name"), F.lit(1).alias("model_version"),
            F.lit("run").alias("run_id"), F.lit(source).alias("source_table"), F.lit(1).cast("long").alias("source_version"),
            F.lit(None).cast("long").alias("source_from_version"), F.lit("batch").alias("batch_id"),
            F.current_timestamp().alias("scored_at"))
        runs.append(timed(lambda: rows.write.format("delta").mode("overwrite").save(str(out)))[0])
        shutil.rmtree(out, ignore_errors=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 3_000_000])
    parser.add_argument("--batch-rows", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement in a row (first and best kept)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lakeforge-bench-score"))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "score.json")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    shutil.rmtree(args.workdir, ignore_errors=True)

    settings = bench_settings(args.workdir, "bench-score", search=SearchSettings(strategy="none"))
    spark = bench_session(settings)
    import mlflow

    gold = demo_gold(spark, settings)
    trained = train_model(spark, settings, gold)
    model = mlflow.spark.load_model(f"models:/{trained.model_name}/{trained.model_version}")
    key = entity_key(settings)

    results = []
    for rows in args.rows:
        source = str(args.workdir / f"input_{rows}")
        build_input(spark, gold.path, rows, source)
        singles, predicting = single_process(spark, model, key, source, args.workdir / "single_out",
                                             settings.score.threshold, args.repeats)
        single_first, single = singles[0], min(singles)
        floors = spark_floor(spark, key, settings.features.label, source, args.workdir, args.repeats)
        # The job cannot beat its Spark floor plus the booster's own work on the same cores: the bound on its ratio.
        bound = min(floors) + min(predicting)
        entry = {"rows": rows, "single_process_s": round(single, 2), "single_process_first_s": round(single_first, 2),
                 "single_process_runs_s": [round(t, 2) for t in singles],
                 "predict_only_s": round(min(predicting), 2), "predict_only_runs_s": [round(t, 2) for t in predicting],
                 "spark_floor_s": round(min(floors), 2), "spark_floor_runs_s": [round(t, 2) for t in floors],
                 "job_bound_s": round(bound, 2), "bound_throughput_vs_single": round(single / bound, 3), "job": []}
        print(json.dumps({k: v for k, v in entry.items() if k != "job"}), flush=True)
        for method in ("transform", "map_in_arrow"):
            for batch in args.batch_rows:
                scoring = settings.score.model_copy(update={"method": method, "arrow_batch_rows": batch})
                runs = []
                for run in range(args.repeats):  # each run into a new predictions table: the same work every time
                    out = args.workdir / f"out_{method}_{batch}_{run}"
                    variant = settings.model_copy(update={
                        "score": scoring, "storage": settings.storage.model_copy(update={"root": str(out)})})
                    seconds, result = timed(lambda: score_table(spark, variant, input_path=source))
                    assert result.rows_written == rows, (result.rows_written, rows)
                    runs.append(seconds)
                    shutil.rmtree(out, ignore_errors=True)
                first, seconds = runs[0], min(runs)
                entry["job"].append({"method": method, "arrow_batch_rows": batch, "seconds": round(seconds, 2),
                                     "first_s": round(first, 2), "runs_s": [round(t, 2) for t in runs],
                                     "time_vs_single": round(seconds / single, 2),
                                     "throughput_vs_single": round(single / seconds, 3),
                                     "first_throughput_vs_single_first": round(single_first / first, 3)})
                print(json.dumps({"rows": rows, **entry["job"][-1]}), flush=True)
        best = min(entry["job"], key=lambda j: j["seconds"])
        entry["best"] = best
        results.append(entry)
        shutil.rmtree(source, ignore_errors=True)
    spark.stop()
    summary = {"machine": {"cores": os.cpu_count(), "spark_master": f"local[{THREADS}]"}, "repeats": args.repeats,
               "seconds": "best of the repeats; first_s: the first run of the session for that configuration",
               "model": {"trees": settings.model.params.get("n_estimators"), "depth": settings.model.params.get("max_depth")},
               "results": results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.output}")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
