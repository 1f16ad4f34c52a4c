"""No loss from distribution: the searched lakeforge model against single-process ``xgboost`` trained with the
same best parameters on the same rows (issue 4's quality bar: within 0.005 holdout AUC, and at least 0.67).

    .venv/bin/python bench/parity.py [--num-workers 2] [--output bench/results/parity.json]

It ingests the bundled data into a scratch lakehouse, trains with lakeforge exactly as the demo does (Hyperopt
search, then an ``xgboost.spark`` fit with ``--num-workers`` workers), then encodes the same training and holdout
rows with the model's own fitted feature stages and fits ``xgboost.XGBClassifier`` with the run's parameters.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from common import ROOT, THREADS, bench_session, bench_settings, demo_gold

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from pyspark.ml import PipelineModel  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from lakeforge.train import entity_key, train_model  # noqa: E402
from lakeforge.train.estimator import FEATURES_COL, LABEL_COL, with_label  # noqa: E402
from lakeforge.train.search import clean_params  # noqa: E402
from lakeforge.train.splits import holdout_split  # noqa: E402


def _value(text: str):
    """MLflow keeps params as strings: numbers back to numbers, names stay names."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _arrays(encoder: PipelineModel, frame):
    pdf = encoder.transform(frame).select(FEATURES_COL, LABEL_COL).toPandas()
    return np.stack([v.toArray() for v in pdf[FEATURES_COL]]), pdf[LABEL_COL].to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lakeforge-bench-parity"))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "parity.json")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)

    settings = bench_settings(args.workdir, "parity", num_workers=args.num_workers)
    spark = bench_session(settings)
    import xgboost

    gold = demo_gold(spark, settings)
    started = time.perf_counter()
    result = train_model(spark, settings, gold, force=True, promote="never")
    lakeforge_seconds = time.perf_counter() - started

    run = mlflow.MlflowClient(settings.mlflow.tracking_uri).get_run(result.run_id)
    known = set(xgboost.XGBClassifier().get_params())
    params = clean_params({k: _value(v) for k, v in run.data.params.items() if k in known and k != "device"})
    fitted = mlflow.spark.load_model(f"models:/{result.model_name}/{result.model_version}")
    encoder = PipelineModel(stages=fitted.stages[:-1])
    frame = with_label(spark.read.format("delta").option("versionAsOf", gold.version).load(gold.path), settings.features)
    train, test, _ = holdout_split(frame, settings.features, entity_key(settings), settings.model.seed)
    x_train, y_train = _arrays(encoder, train)
    x_test, y_test = _arrays(encoder, test)
    started = time.perf_counter()
    single = xgboost.XGBClassifier(**params, random_state=settings.model.seed, n_jobs=THREADS, missing=np.nan)
    single.fit(x_train, y_train)
    single_seconds = time.perf_counter() - started
    single_auc = float(roc_auc_score(y_test, single.predict_proba(x_test)[:, 1]))

    out = {
        "rows": {"train": int(len(y_train)), "holdout": int(len(y_test))},
        "params": params,
        "num_workers": args.num_workers,
        "lakeforge_holdout_auc": result.metrics["auc"],
        "single_process_holdout_auc": single_auc,
        "auc_difference": result.metrics["auc"] - single_auc,
        "within_0_005": abs(result.metrics["auc"] - single_auc) <= 0.005,
        "reaches_0_67": result.metrics["auc"] >= 0.67,
        "lakeforge_train_seconds_incl_search": lakeforge_seconds,
        "single_process_fit_seconds": single_seconds,
        "machine": f"{THREADS} cores",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    spark.stop()


if __name__ == "__main__":
    main()
