"""The training benchmark's fit comparison on an exported feature table, for a machine without the lakehouse stack.

``bench/train.py --export-encoded DIR`` writes the demo's gold rows as lakeforge's feature pipeline encodes them
(``features`` as an array of floats, ``label``) to Parquet. This script needs only pyspark, xgboost, numpy,
pandas and pyarrow (no Delta, no MLflow, no lakeforge), so it runs on a bare GPU machine:

    python bench/train_encoded.py DIR [--devices cpu cuda] [--rows 100000 1000000 3000000] [--output PATH]

For each device and size it times, on the same rows: single-process ``xgboost`` (hist, the parameters of
``bench/train.py``) and ``xgboost.spark``'s classifier with the same parameters on ``local[N]``. On ``cpu`` both
use N threads (N Spark workers of one core each); on ``cuda`` both use the one GPU (one Spark worker).
The features go to ``xgboost.spark`` as a vector column, as lakeforge's pipeline gives them. Unlike lakeforge's
``build_pipeline``, the classifier here keeps xgboost.spark's per-round evaluation of the training rows (the
recorded H200 readings were taken with it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
from pyspark.ml.functions import array_to_vector
from pyspark.sql import SparkSession

from basics import repeated, timed

PARAMS = {"n_estimators": 200, "max_depth": 6, "learning_rate": 0.1, "tree_method": "hist"}


def gpu_name() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("encoded", type=Path, help="the folder bench/train.py --export-encoded wrote")
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=["cpu", "cuda"])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 3_000_000])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--output", type=Path, default=Path("bench/results/train_encoded.json"))
    args = parser.parse_args()
    if not (args.encoded / "_SUCCESS").exists():
        raise SystemExit(f"{args.encoded}: no exported feature table here; write one with "
                         f"`bench/train.py --export-encoded {args.encoded}` first")
    if "cuda" in args.devices and gpu_name() is None:
        raise SystemExit("--devices cuda: no NVIDIA GPU visible (nvidia-smi -L failed); run on a GPU machine "
                         "or pass --devices cpu")

    import xgboost
    from xgboost.spark import SparkXGBClassifier

    threads = args.threads
    spark = (SparkSession.builder.master(f"local[{threads}]").appName("lakeforge-bench-train-encoded")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", str(threads))
             .config("spark.driver.memory", "24g").config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        base = spark.read.parquet(str(args.encoded))
        base_rows = base.count()
        results = []
        for rows in args.rows:
            frame = repeated(base, base_rows, rows)
            pdf = frame.toPandas()
            x = np.stack(pdf["features"].to_numpy()).astype(np.float32)
            y = pdf["label"].to_numpy()
            for device in args.devices:
                workers = 1 if device == "cuda" else threads
                vectors = (frame.select(array_to_vector("features").alias("features"), "label")
                           .repartition(workers).persist())
                vectors.count()
                if device == "cuda":  # the CUDA context's start is not the fit's
                    xgboost.XGBClassifier(n_estimators=2, device="cuda").fit(x[:1000], y[:1000])
                single, _ = timed(lambda: xgboost.XGBClassifier(**PARAMS, n_jobs=threads, device=device,
                                                             random_state=0).fit(x, y))
                estimator = SparkXGBClassifier(features_col="features", label_col="label", num_workers=workers,
                                               device=device, random_state=0, verbose=False, **PARAMS)
                distributed, _ = timed(lambda: estimator.fit(vectors))
                vectors.unpersist()
                entry = {"rows": rows, "device": device, "spark_workers": workers, "threads": threads,
                         "single_process_s": round(single, 2), "xgboost_spark_s": round(distributed, 2),
                         "ratio_spark_vs_single": round(distributed / single, 2)}
                print(json.dumps(entry), flush=True)
                results.append(entry)
    finally:
        spark.stop()
    summary = {"machine": {"cores": os.cpu_count(), "gpu": gpu_name(), "python": platform.python_version(),
                           "spark_master": f"local[{threads}]"},
               "versions": {"xgboost": xgboost.__version__, "pyspark": spark.version},
               "params": PARAMS, "base_rows": base_rows, "fit": results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
