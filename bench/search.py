"""Search benchmark: the two engines of ``lakeforge.train.tuning`` (``model.search.engine``: hyperopt, optuna) on
the same seeded synthetic table, the same space and the same number of trials, strategy ``parallel`` at
parallelism 2 (single-node xgboost per trial on a broadcast sample, one Spark task per trial).

    .venv/bin/python bench/search.py [--rows 100000] [--evals 8] [--rounds 2] [--output PATH]

Each round runs both engines (alternating which goes first), each in a fresh lakehouse (a fresh Optuna study),
inside an MLflow run, timed with Python's own timer around ``run_search`` (encoding and broadcast of the sample,
the trials, the nested runs). A two-trial search runs first, untimed, so that no engine pays for starting the
Python workers. Results go to bench/results/search.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
from pathlib import Path

from basics import timed
from common import ROOT, THREADS, bench_session, bench_settings

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from lakeforge.config import FeatureSettings, SearchSettings, SplitSettings, StorageSettings  # noqa: E402
from lakeforge.train.estimator import with_label  # noqa: E402
from lakeforge.train.search import run_search  # noqa: E402

FEATURES = FeatureSettings(table="synthetic", base="synthetic", label="y", categorical=("c",),
                           numeric=("x1", "x2", "x3", "x4", "x5"),
                           split=SplitSettings(column="d", test_from="2024-11-01"))
PARAMS = {"n_estimators": 100, "tree_method": "hist"}
SPACE = {"max_depth": {"quniform": [3, 9, 1]}, "learning_rate": {"loguniform": [0.03, 0.3]},
         "min_child_weight": {"loguniform": [1, 20]}, "subsample": {"uniform": [0.7, 1.0]}}


def synthetic(rows: int, seed: int = 13) -> pd.DataFrame:
    """Seeded rows whose label mixes an interaction, a threshold and a category effect, with 15% noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    c = rng.choice(list("abcdef"), size=rows)
    logit = 1.5 * x[:, 0] * x[:, 1] + (x[:, 2] > 0.5) - 0.7 * x[:, 3] + np.where(np.isin(c, ["a", "b"]), 0.8, -0.3)
    y = ((logit + rng.logistic(size=rows) * 0.8) > 0).astype(int)
    days = rng.integers(0, 365, size=rows)
    return pd.DataFrame({"id": np.arange(rows), "c": c, **{f"x{i + 1}": x[:, i] for i in range(5)}, "y": y,
                         "d": [dt.date(2024, 1, 1) + dt.timedelta(days=int(n)) for n in days]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--evals", type=int, default=8)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lakeforge-bench-search"))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "search.json")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)

    base = bench_settings(args.workdir, "bench-search")
    spark = bench_session(base)
    frame = with_label(spark.createDataFrame(synthetic(args.rows)), FEATURES)
    train = frame.where(F.col("d") < F.lit(FEATURES.split.test_from).cast("date")).persist()
    train_rows = train.count()
    mlflow.set_tracking_uri(base.mlflow.tracking_uri)
    mlflow.set_experiment("bench-search")

    def search(engine: str, evals: int, folder: str):
        search_settings = SearchSettings(engine=engine, strategy="parallel", max_evals=evals,
                                         parallelism=args.parallelism, sample_rows=50_000, space=SPACE)
        model = base.model.model_copy(update={"search": search_settings, "registered_name": "bench_search",
                                              "num_workers": 1, "params": PARAMS})
        settings = base.model_copy(update={"features": FEATURES, "model": model, "storage": StorageSettings(
            root=str(args.workdir / folder / "lakehouse"), landing=str(args.workdir / "landing"))})
        with mlflow.start_run(run_name=f"{engine} {folder}"):
            return timed(lambda: run_search(spark, FEATURES, model, train, dict(PARAMS), "cpu", ["id"], THREADS,
                                            settings=settings))

    search("hyperopt", 2, "warmup")  # starts the Python workers; untimed
    runs: dict[str, list[dict]] = {"hyperopt": [], "optuna": []}
    for number in range(args.rounds):
        order = ("hyperopt", "optuna") if number % 2 == 0 else ("optuna", "hyperopt")
        for engine in order:
            seconds, result = search(engine, args.evals, f"round{number}-{engine}")
            entry = {"round": number, "wall_s": round(seconds, 2), "trials": result.trials,
                     "trials_per_s": round(result.trials / seconds, 4),
                     "best_validation_auc": round(result.best_validation_score, 5)}
            print(json.dumps({"engine": engine, **entry}), flush=True)
            runs[engine].append(entry)
    train.unpersist()
    spark.stop()

    summary = {engine: {"wall_s": round(statistics.mean(e["wall_s"] for e in entries), 2),
                        "trials_per_s": round(statistics.mean(e["trials_per_s"] for e in entries), 4),
                        "best_validation_auc": round(statistics.mean(e["best_validation_auc"] for e in entries), 5),
                        "runs": entries}
               for engine, entries in runs.items()}
    report = {"machine": {"cores": os.cpu_count(), "spark_master": f"local[{THREADS}]"},
              "data": {"rows": args.rows, "train_rows": train_rows, "seed": 13, "sample_rows": 50_000},
              "search": {"strategy": "parallel", "parallelism": args.parallelism, "evals": args.evals,
                         "rounds": args.rounds, "params": PARAMS, "space": SPACE},
              **summary,
              "ratio_optuna_vs_hyperopt": {
                  "wall_s": round(summary["optuna"]["wall_s"] / summary["hyperopt"]["wall_s"], 3),
                  "trials_per_s": round(summary["optuna"]["trials_per_s"] / summary["hyperopt"]["trials_per_s"], 3),
                  "best_validation_auc": round(summary["optuna"]["best_validation_auc"]
                                               / summary["hyperopt"]["best_validation_auc"], 4)}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["ratio_optuna_vs_hyperopt"]))
    print(f"wrote {args.output}")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
