"""Hyperopt searches over booster parameters, declared in YAML (``model.search``), with TPE.

Two strategies:

* ``parallel``: ``SparkTrials(parallelism=N)``. The feature pipeline is fitted once; a sample of the encoded
  training rows is broadcast, and each trial trains single-node ``xgboost`` on it inside one Spark task.
  Best when the data fits a task's memory: many cheap trials at once.
* ``distributed``: plain ``Trials``. Each trial is itself an ``xgboost.spark`` fit across the cluster (a
  trial that is distributed cannot run inside SparkTrials: hyperopt#633). Best for data that needs the cluster.

Trials are scored (AUC for a classifier, RMSE for a regressor) on validation rows of the training split (its
latest share for a time split, a stratified seeded share otherwise; never the holdout), and each becomes a
nested MLflow run. The same config, data version and seed give the same best parameters
(``parallel`` with parallelism 1 and ``distributed``; with several trials at once TPE sees results in the
order they finish).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
from hyperopt import STATUS_OK, Trials, fmin, hp, space_eval, tpe
from pyspark.ml import Pipeline
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import FeatureSettings, ModelSettings, SearchSettings
from lakeforge.liveness import owner_tags
from lakeforge.train.estimator import FEATURES_COL, LABEL_COL, build_pipeline, fit_pipeline, holdout_metrics
from lakeforge.train.splits import validation_flag

INTEGER_PARAMS = {"n_estimators", "max_depth", "max_leaves", "max_bin", "num_parallel_tree"}


@dataclass(frozen=True)
class SearchResult:
    best_params: dict[str, Any]
    best_validation_score: float
    trials: int
    strategy: str
    metric: str = "auc"


def hyperopt_space(space: dict[str, dict[str, list]]) -> dict[str, Any]:
    """YAML space -> hyperopt expressions."""
    out = {}
    for name, spec in space.items():
        kind, args = next(iter(spec.items()))
        if kind == "choice":
            out[name] = hp.choice(name, list(args))
        elif kind == "uniform":
            out[name] = hp.uniform(name, *args)
        elif kind == "loguniform":
            out[name] = hp.loguniform(name, math.log(args[0]), math.log(args[1]))
        elif kind == "quniform":
            out[name] = hp.quniform(name, *args)
        else:
            out[name] = hp.randint(name, int(args[0]), int(args[1]))
    return out


def clean_params(params: dict[str, Any], integers: frozenset[str] | set[str] = INTEGER_PARAMS) -> dict[str, Any]:
    """hyperopt returns floats (and numpy scalars); the trainer wants ints where it counts (``integers``)."""
    cleaned = {}
    for key, value in params.items():
        value = value.item() if isinstance(value, np.generic) else value
        if key in integers and isinstance(value, float):
            value = int(round(value))
        cleaned[key] = value
    return cleaned


def _no_progress(evals: int):
    """Stop once the best finished trial is ``evals`` finished trials old. (hyperopt's own no_progress_loss reads
    the newest trial's loss, which SparkTrials may not have yet.)"""
    def stop(trials, *_):
        losses = [t["result"]["loss"] for t in trials.trials if t.get("result", {}).get("status") == STATUS_OK]
        return bool(losses) and len(losses) - 1 - int(np.argmin(losses)) >= evals, []

    return stop


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
               base_params: dict[str, Any], device: str, key: list[str], num_workers: int) -> SearchResult | None:
    """Search ``model.search.space`` around ``base_params``; logs one nested MLflow run per trial."""
    search: SearchSettings = model.search
    if search.strategy == "none" or not search.space:
        return None
    # Early stopping belongs to the final fit; trials compare complete boosters.
    given_params, base_params = base_params, {k: v for k, v in base_params.items() if k != "early_stopping_rounds"}
    classify = model.task == "classification"
    is_validation = validation_flag(train, features, search.validation_fraction, key, model.seed, classify)
    fit, validation = train.where(~is_validation), train.where(is_validation)
    rstate = np.random.default_rng(model.seed)
    early_stop = _no_progress(search.no_progress_evals) if search.no_progress_evals else None
    sign = -1.0 if classify else 1.0  # hyperopt minimises: -AUC, RMSE
    metric = model.gate_metric

    if search.strategy == "parallel":
        from hyperopt import SparkTrials

        encoder = Pipeline(stages=build_pipeline(features, model, params=base_params, num_workers=num_workers).getStages()[:-1]).fit(fit)

        def arrays(frame: DataFrame, limit: int):
            rows = encoder.transform(frame).select(FEATURES_COL, LABEL_COL)
            rows = rows.orderBy(F.xxhash64(*[F.col(c) for c in features.feature_columns if c in frame.columns])).limit(limit)
            pdf = rows.toPandas()
            return np.stack([v.toArray() for v in pdf[FEATURES_COL]]), pdf[LABEL_COL].to_numpy()

        x_fit, y_fit = arrays(fit, search.sample_rows)
        x_val, y_val = arrays(validation, max(search.sample_rows // 4, 100))
        shared = spark.sparkContext.broadcast((x_fit, y_fit, x_val, y_val))
        seed, task = model.seed, model.task

        def objective(sampled: dict[str, Any]) -> dict[str, Any]:
            params = {**base_params, **clean_params(sampled)}
            started = time.time()
            score = _fit_score_single_node(params, seed, task, shared.value)
            return {"loss": sign * score, "status": STATUS_OK, "duration": time.time() - started}

        trials = SparkTrials(parallelism=search.parallelism, spark_session=spark)
    else:
        fit, validation = fit.persist(), validation.persist()

        def objective(sampled: dict[str, Any]) -> dict[str, Any]:
            params = {**base_params, **clean_params(sampled)}
            started = time.time()
            fitted = fit_pipeline(build_pipeline(features, model, params=params, device=device,
                                                  num_workers=num_workers), fit, model.task)
            score = holdout_metrics(fitted.score(validation), model.task)[metric]
            return {"loss": sign * score, "status": STATUS_OK, "duration": time.time() - started}

        trials = Trials()
    try:
        best = fmin(objective, hyperopt_space(search.space), algo=tpe.suggest, max_evals=search.max_evals,
                    timeout=search.timeout_seconds, trials=trials, rstate=rstate, early_stop_fn=early_stop,
                    show_progressbar=False)
    finally:
        if search.strategy == "parallel":
            shared.unpersist()
        else:
            fit.unpersist()
            validation.unpersist()
    _log_trials(trials, search, metric, sign)
    best_params = clean_params(space_eval(hyperopt_space(search.space), best))
    return SearchResult({**given_params, **best_params}, sign * min(trials.losses()), len(trials.trials),
                        search.strategy, metric)


def _log_trials(trials, search: SearchSettings, metric: str, sign: float, integers=INTEGER_PARAMS) -> None:
    """One nested run per trial, logged from the driver (workers need no access to the tracking store)."""
    experiment_id = mlflow.active_run().info.experiment_id
    for number, trial in enumerate(trials.trials):
        values = {k: v[0] for k, v in trial["misc"]["vals"].items() if v}
        params = clean_params(space_eval(hyperopt_space(search.space), values), integers) if values else {}
        result = trial.get("result", {})
        with mlflow.start_run(run_name=f"trial-{number:03d}", nested=True, experiment_id=experiment_id,
                              tags=owner_tags()):
            mlflow.log_params({**params, "strategy": search.strategy})
            if result.get("status") == STATUS_OK:
                mlflow.log_metrics({f"validation_{metric}": sign * result["loss"],
                                    "duration_seconds": result.get("duration", 0.0)})
            mlflow.set_tag("trial_status", result.get("status", "unknown"))
