"""The torch path of ``train_model``: preprocessing, staging, an optional search (``train.tuning``, Hyperopt or
Optuna, strategy ``distributed``: each trial is itself a distributed run), the final distributed fit, and its MLflow
records."""

from __future__ import annotations

from typing import Any

import mlflow
from pyspark.sql import DataFrame, SparkSession

from lakeforge.config import Settings
from lakeforge.paths import staging_table
from lakeforge.train.deep import FittedNetwork, checkpoint_folder, fit_network, with_params
from lakeforge.train.deep.data import VALIDATION, fit_preprocessing, stage_training_table
from lakeforge.train.estimator import holdout_metrics
from lakeforge.train.splits import validation_flag
from lakeforge.train.tuning import SearchResult, search, study_for

DEEP_INTEGER = frozenset({"batch_size", "hidden_units", "hidden_layers", "embedding_dim"})


def train_network(spark: SparkSession, settings: Settings, train: DataFrame, key: list[str],
                  identity: dict[str, Any]) -> tuple[FittedNetwork, SearchResult | None]:
    """Fit the network on ``train`` (rows of the training split; a validation share of it drives early stopping
    and trial scores) inside the active MLflow run; ``identity`` (data version, config) names the checkpoints."""
    features, model = settings.features, settings.model
    deep, classify = model.deep, model.task == "classification"
    flagged = train.withColumn(VALIDATION, validation_flag(train, features, model.search.validation_fraction, key,
                                                           model.seed, classify))
    fit_rows = flagged.where(~flagged[VALIDATION])
    preprocessing = fit_preprocessing(fit_rows, features, model.task, deep.max_categories)
    staging = staging_table(settings, model.registered_name)
    staged = stage_training_table(flagged, features, model.weight_col, staging, files=max(4 * deep.num_processes, 4))
    mlflow.log_params({"staged_table": staged.path, "staged_version": staged.version,
                       "validation_rows": staged.validation_rows})

    search = None
    if model.search.strategy == "distributed" and model.search.space:
        search = _search(spark, settings, staged, preprocessing, flagged.where(flagged[VALIDATION]), identity)
        deep = with_params(deep, search.best_params)
    params = deep.model_dump(exclude={"checkpoint_dir", "timeout_seconds", "read_batch_rows"})
    mlflow.log_params({f"deep_{k}": v for k, v in params.items()})
    folder = checkpoint_folder(settings, {**identity, "params": params})
    fitted = fit_network(spark, deep, staged, preprocessing, seed=model.seed, checkpoint_dir=folder)
    for record in fitted.history:
        mlflow.log_metrics({"train_loss": record["train_loss"], "validation_loss": record["validation_loss"],
                            "epoch_seconds": record["seconds"]}, step=record["epoch"])
    mlflow.log_metrics({"fit_seconds": fitted.fit_seconds, "epochs": len(fitted.history),
                        "resumed_from_epoch": fitted.resumed_from, "world_size": fitted.world_size,
                        "ranks_identical_weights": float(len(set(fitted.checksums)) == 1)})
    return fitted, search


def _search(spark: SparkSession, settings: Settings, staged, preprocessing, validation: DataFrame,
            identity: dict[str, Any]) -> SearchResult:
    """Each trial a distributed fit of the network, scored on the validation rows (``train.tuning``)."""
    model = settings.model
    metric = model.gate_metric
    study = study_for(settings, identity) if model.search.engine == "optuna" else None
    validation = validation.persist()

    def objective(params: dict[str, Any]) -> float:
        folder = checkpoint_folder(settings, {**identity, "trial": params})
        fitted = fit_network(spark, with_params(model.deep, params), staged, preprocessing, seed=model.seed,
                             checkpoint_dir=folder)
        return holdout_metrics(fitted.score(validation), model.task)[metric]

    try:
        result = search(objective, model.search, seed=model.seed, metric=metric,
                        maximize=model.task == "classification", integers=DEEP_INTEGER, spark=spark, study=study)
    finally:
        validation.unpersist()
    mlflow.log_metrics({f"search_best_validation_{metric}": result.best_validation_score, "search_trials": result.trials})
    mlflow.set_tag("search_strategy", result.strategy)
    return result
