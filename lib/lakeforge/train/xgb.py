"""The xgboost fit of a training run: optional search (``train.search``) and k-fold cross-validation
(``train.cv``), then the Spark ML pipeline refitted on the whole training split (early stopping on validation
rows of it when ``early_stopping_rounds`` is set). Runs inside the active MLflow run and logs what it did."""

from __future__ import annotations

import time

import mlflow
from pyspark.sql import DataFrame, SparkSession

from lakeforge.config import Settings
from lakeforge.models.pipeline import SparkPipelineModel
from lakeforge.train.cv import cross_validate
from lakeforge.train.estimator import VALIDATION_COL, build_pipeline, fit_pipeline
from lakeforge.train.search import run_search
from lakeforge.train.splits import validation_flag


def fit_xgboost(spark: SparkSession, settings: Settings, train: DataFrame, key: list[str], params: dict, *,
                device: str, workers: int, describe_split: str) -> SparkPipelineModel:
    """Search (when configured), cross-validate (when configured) and fit on ``train``; log the parameters."""
    features, model = settings.features, settings.model
    classify = model.task == "classification"
    search = run_search(spark, features, model, train, params, device, key, workers, settings=settings)
    if search is not None:
        params = search.best_params
        mlflow.log_metrics({f"search_best_validation_{model.gate_metric}": search.best_validation_score,
                            "search_trials": search.trials})
        mlflow.set_tag("search_strategy", search.strategy)
    mlflow.log_params({**params, "num_workers": workers, "seed": model.seed, "device": device, "task": model.task,
                       "split": describe_split, "n_features": len(features.feature_columns),
                       "weight_col": model.weight_col})
    if features.split.cv_folds:
        cross_validate(features, model, train, params, device, workers, key)
    early_stopping = "early_stopping_rounds" in params
    if early_stopping:
        fraction = model.search.validation_fraction
        train = train.withColumn(VALIDATION_COL, validation_flag(train, features, fraction, key, model.seed, classify))
    started = time.perf_counter()
    pipeline = build_pipeline(features, model, params=params, device=device, num_workers=workers,
                              validation=early_stopping)
    fitted = fit_pipeline(pipeline, train, model.task)
    mlflow.log_metric("fit_seconds", time.perf_counter() - started)
    if early_stopping:
        booster = fitted.pipeline.stages[-1].get_booster()
        mlflow.log_metrics({"best_iteration": booster.best_iteration, "boosted_rounds": booster.num_boosted_rounds()})
    return fitted
