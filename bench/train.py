"""Training benchmark: ``xgboost.spark`` fit against single-process ``xgboost`` (hist, same parameters, same
number of threads) on the same encoded rows, and the parallel efficiency of the Hyperopt search.

    .venv/bin/python bench/train.py [--rows 100000 1000000 3000000] [--device cpu|cuda] [--output PATH]

Rows are the demo's gold features (built here with lakeforge from the bundled data), repeated to reach each size.
Results go to bench/results/train.json (bench/results/train_<device>.json for another device).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from basics import repeated, timed
from common import ROOT, THREADS, bench_session, bench_settings, demo_gold

import numpy as np  # noqa: E402
from pyspark.ml import Pipeline  # noqa: E402
from pyspark.ml.functions import vector_to_array  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from lakeforge.train import entity_key  # noqa: E402
from lakeforge.train.estimator import FEATURES_COL, LABEL_COL, build_pipeline, with_label  # noqa: E402

PARAMS = {"n_estimators": 200, "max_depth": 6, "learning_rate": 0.1, "tree_method": "hist"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 3_000_000])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--search-evals", type=int, default=16)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lakeforge-bench-train"))
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--export-encoded", type=Path, default=None,
                        help="write the encoded rows to this folder (Parquet) for bench/train_encoded.py, and stop")
    args = parser.parse_args()
    output = args.output or ROOT / "bench" / "results" / ("train.json" if args.device == "cpu" else f"train_{args.device}.json")

    settings = bench_settings(args.workdir, "bench")
    spark = bench_session(settings, driver_memory="12g")
    import xgboost

    gold = demo_gold(spark, settings)
    features = settings.features
    labeled = with_label(spark.read.format("delta").load(gold.path), features)
    encoder = Pipeline(stages=build_pipeline(features, settings.model, params=PARAMS).getStages()[:-1]).fit(labeled)
    encoded = encoder.transform(labeled).select(FEATURES_COL, LABEL_COL)
    if args.export_encoded:
        (encoded.select(vector_to_array(F.col(FEATURES_COL), "float32").alias("features"), LABEL_COL)
         .coalesce(1).write.mode("overwrite").parquet(str(args.export_encoded)))
        print(f"wrote {args.export_encoded}")
        spark.stop()
        shutil.rmtree(args.workdir, ignore_errors=True)
        return
    base_rows = encoded.count()

    def spark_estimator(trees: int):
        return build_pipeline(features, settings.model.model_copy(update={"num_workers": THREADS}),
                              params={**PARAMS, "n_estimators": trees}, device=args.device).getStages()[-1]

    results = []
    spark_estimator(1).fit(encoded.limit(10_000).repartition(THREADS))  # the session's first fit starts the workers
    for rows in args.rows:
        frame = repeated(encoded, base_rows, rows).repartition(THREADS).persist()
        frame.count()
        pdf = frame.select(vector_to_array(F.col(FEATURES_COL)).alias("x"), LABEL_COL).toPandas()  # Arrow transfer
        x = np.stack(pdf["x"].to_numpy())
        y = pdf[LABEL_COL].to_numpy()

        def single(trees):
            return timed(lambda: xgboost.XGBClassifier(**{**PARAMS, "n_estimators": trees}, n_jobs=THREADS,
                                                        device=args.device, random_state=0).fit(x, y))[0]

        def distributed(trees):
            estimator = spark_estimator(trees)
            return timed(lambda: estimator.fit(frame))[0]

        single_seconds, single_one = single(PARAMS["n_estimators"]), single(1)
        # One tree: what a fit costs besides its rounds (Spark's jobs, the barrier stage, the rows into each worker's
        # DMatrix, the model back to the driver).
        spark_one = distributed(1)
        spark_seconds = distributed(PARAMS["n_estimators"])
        frame.unpersist()
        # The ratio if the workers' 200 rounds took exactly as long as the single process's: the fixed cost alone.
        fixed_only = spark_one + single_seconds - single_one
        entry = {"rows": rows, "single_process_s": round(single_seconds, 2), "xgboost_spark_s": round(spark_seconds, 2),
                 "ratio_spark_vs_single": round(spark_seconds / single_seconds, 2),
                 "single_process_one_tree_s": round(single_one, 2), "xgboost_spark_one_tree_s": round(spark_one, 2),
                 "ratio_fixed_cost_only": round(fixed_only / single_seconds, 2), "threads": THREADS, "device": args.device}
        print(json.dumps(entry), flush=True)
        results.append(entry)

    # Hyperopt: the parallel strategy, parallelism 1 vs 2, same space and evals.
    from lakeforge.train.search import run_search
    train = with_label(spark.read.format("delta").load(gold.path), features)
    train = train.where(F.col(features.split.column) < F.lit(features.split.test_from).cast("date"))
    timings = {}
    for parallelism in (1, 2):
        search = settings.model.search.model_copy(update={"strategy": "parallel", "parallelism": parallelism,
                                                          "max_evals": args.search_evals, "no_progress_evals": None,
                                                          "sample_rows": 50_000})
        model = settings.model.model_copy(update={"search": search})
        import mlflow
        mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
        with mlflow.start_run():
            timings[parallelism], _ = timed(lambda: run_search(spark, features, model, train, dict(PARAMS), args.device,
                                                               entity_key(settings), THREADS))
    spark.stop()
    efficiency = timings[1] / (2 * timings[2])
    summary = {"machine": {"cores": os.cpu_count(), "spark_master": f"local[{THREADS}]"}, "params": PARAMS,
               "fit": results,
               "hyperopt": {"evals": args.search_evals, "t_parallelism_1_s": round(timings[1], 2),
                            "t_parallelism_2_s": round(timings[2], 2), "efficiency": round(efficiency, 3)}}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["hyperopt"]))
    print(f"wrote {output}")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
