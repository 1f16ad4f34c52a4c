"""Searches over booster parameters, declared in YAML (``model.search``), run by ``train.tuning`` (TPE, with
the Hyperopt or the Optuna engine: ``model.search.engine``).

Two strategies:

* ``parallel``: the feature pipeline is fitted once; a sample of the encoded training rows is broadcast, and each
  trial trains single-node ``xgboost`` on it inside one Spark task (SparkTrials, or Optuna's trials asked
  ``parallelism`` at a time and run in one Spark job). Best when the data fits a task's memory.
* ``distributed``: trials one after another on the driver, each itself an ``xgboost.spark`` fit across the cluster
  (a trial that is distributed cannot run inside SparkTrials: hyperopt#633). Best for data that needs the cluster.

Trials are scored (AUC for a classifier, RMSE for a regressor) on validation rows of the training split (its
latest share for a time split, a stratified seeded share otherwise; never the holdout), and each becomes a
nested MLflow run. The same config, data version and seed give the same best parameters
(``parallel`` with parallelism 1 and ``distributed``; with several trials at once TPE sees results in the
order they finish).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from pyspark.ml import Pipeline
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import FeatureSettings, ModelSettings, SearchSettings, Settings
from lakeforge.errors import TrainingConfigError
from lakeforge.train import tuning
from lakeforge.train.estimator import FEATURES_COL, LABEL_COL, build_pipeline, fit_pipeline, holdout_metrics
from lakeforge.train.splits import validation_flag
from lakeforge.train.tuning import SearchResult, clean_params, hyperopt_space

INTEGER_PARAMS = frozenset({"n_estimators", "max_depth", "max_leaves", "max_bin", "num_parallel_tree"})
__all__ = ["INTEGER_PARAMS", "SearchResult", "clean_params", "hyperopt_space", "run_search"]


def _fit_score_single_node(params: dict[str, Any], seed: int, task: str, data) -> float:
    """Validation AUC (classification) or RMSE (regression) of a single-node xgboost fit."""
    import xgboost
    from sklearn.metrics import mean_squared_error, roc_auc_score

    x_fit, y_fit, x_val, y_val = data
    estimator = xgboost.XGBClassifier if task == "classification" else xgboost.XGBRegressor
    model = estimator(**params, random_state=seed, n_jobs=1, missing=np.nan)
    model.fit(x_fit, y_fit)
    if task == "classification":
        return float(roc_auc_score(y_val, model.predict_proba(x_val)[:, 1]))
    return float(np.sqrt(mean_squared_error(y_val, model.predict(x_val))))


def run_search(spark: SparkSession, features: FeatureSettings, model: ModelSettings, train: DataFrame,
               base_params: dict[str, Any], device: str, key: list[str], num_workers: int, *,
               settings: Settings | None = None) -> SearchResult | None:
    """Search ``model.search.space`` around ``base_params``; logs one nested MLflow run per trial.

    ``settings`` (the run's settings) places the Optuna study (``model.search.engine: optuna``): under its
    files location (``storage.files``) unless ``model.search.storage`` is set, named after the active MLflow run's data lineage."""
    search: SearchSettings = model.search
    if search.strategy == "none" or not search.space:
        return None
    study = None
    if search.engine == "optuna":
        if settings is None:
            raise TrainingConfigError("model.search.engine optuna keeps its study under storage.files: call "
                                      "run_search(..., settings=settings), or use engine: hyperopt")
        study = tuning.study_for(settings.model_copy(update={"features": features, "model": model}),
                                 tuning.run_lineage())
    # Early stopping belongs to the final fit; trials compare complete boosters.
    given_params, base_params = base_params, {k: v for k, v in base_params.items() if k != "early_stopping_rounds"}
    classify = model.task == "classification"
    is_validation = validation_flag(train, features, search.validation_fraction, key, model.seed, classify)
    fit, validation = train.where(~is_validation), train.where(is_validation)

    if search.strategy == "parallel":
        encoder = Pipeline(stages=build_pipeline(features, model, params=base_params,
                                                 num_workers=num_workers).getStages()[:-1]).fit(fit)

        def arrays(frame: DataFrame, limit: int):
            rows = encoder.transform(frame).select(FEATURES_COL, LABEL_COL)
            rows = rows.orderBy(F.xxhash64(*[F.col(c) for c in features.feature_columns if c in frame.columns])).limit(limit)
            pdf = rows.toPandas()
            return np.stack([v.toArray() for v in pdf[FEATURES_COL]]), pdf[LABEL_COL].to_numpy()

        x_fit, y_fit = arrays(fit, search.sample_rows)
        x_val, y_val = arrays(validation, max(search.sample_rows // 4, 100))
        shared = spark.sparkContext.broadcast((x_fit, y_fit, x_val, y_val))
        seed, task = model.seed, model.task

        def objective(params: dict[str, Any]) -> float:  # runs on an executor
            return _fit_score_single_node({**base_params, **params}, seed, task, shared.value)

        release = shared.unpersist
    else:
        fit, validation = fit.persist(), validation.persist()

        def objective(params: dict[str, Any]) -> float:
            fitted = fit_pipeline(build_pipeline(features, model, params={**base_params, **params}, device=device,
                                                 num_workers=num_workers), fit, model.task)
            return holdout_metrics(fitted.score(validation), model.task)[model.gate_metric]

        def release() -> None:
            fit.unpersist()
            validation.unpersist()
    try:
        result = tuning.search(objective, search, seed=model.seed, metric=model.gate_metric, maximize=classify,
                               integers=INTEGER_PARAMS, spark=spark, study=study)
    finally:
        release()
    return replace(result, best_params={**given_params, **result.best_params})
