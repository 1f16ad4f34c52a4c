"""k-fold cross-validation on the training split: each fold is scored by a model fitted on the others, with the
same pipeline and parameters as the final model; the mean and spread of each metric are logged to MLflow."""

from __future__ import annotations

import logging
from typing import Any

import mlflow
import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.config import FeatureSettings, ModelSettings
from lakeforge.logs import kv
from lakeforge.train.estimator import build_pipeline, fit_pipeline, holdout_metrics
from lakeforge.train.splits import fold_column

log = logging.getLogger(__name__)
FOLD_COL = "_cv_fold"


def cross_validate(features: FeatureSettings, model: ModelSettings, train: DataFrame, params: dict[str, Any],
                   device: str, num_workers: int, key: list[str]) -> dict[str, dict[str, float]]:
    """Fit ``features.split.cv_folds`` models; returns {metric: {mean, std, min, max}} and logs each as
    ``cv_<metric>_mean`` / ``cv_<metric>_std`` plus ``cv/folds.json`` with every fold's numbers."""
    folds = features.split.cv_folds
    params = {k: v for k, v in params.items() if k != "early_stopping_rounds"}
    classify = model.task == "classification"
    with_folds = train.withColumn(FOLD_COL, fold_column(train, folds, key, model.seed, classify)).persist()
    per_fold: list[dict[str, float]] = []
    try:
        for fold in range(folds):
            pipeline = build_pipeline(features, model, params=params, device=device, num_workers=num_workers)
            fitted = fit_pipeline(pipeline, with_folds.where(F.col(FOLD_COL) != fold), model.task)
            metrics = holdout_metrics(fitted.score(with_folds.where(F.col(FOLD_COL) == fold)), model.task)
            per_fold.append(metrics)
            log.info("cross-validation fold", extra=kv(fold=f"{fold + 1}/{folds}", **metrics))
    finally:
        with_folds.unpersist()
    summary = {}
    for name in per_fold[0]:
        values = np.array([m[name] for m in per_fold])
        summary[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)), "min": float(values.min()),
                         "max": float(values.max())}
    mlflow.log_metrics({f"cv_{name}_{stat}": summary[name][stat] for name in summary for stat in ("mean", "std")})
    mlflow.log_dict({"folds": folds, "per_fold": per_fold, "summary": summary}, "cv/folds.json")
    return summary
