"""Training: the gold table's time split, the Spark ML pipeline with ``xgboost.spark``, MLflow tracking with
evaluation artifacts, registration as ``challenger``, and the registry gate that decides ``champion``."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
from dataclasses import dataclass
from importlib.metadata import version as package_version

import mlflow
from mlflow.models import infer_signature
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import lakeforge
from lakeforge.config import Settings
from lakeforge.features import GoldTable
from lakeforge.monitor.profile import log_baseline_profile
from lakeforge.train.checks import check_cluster, resolve_device, validate_params
from lakeforge.train.estimator import (LABEL_COL, SCORE_COL, assembled_features, build_pipeline, holdout_metrics,
                                       positive_probability, time_split, with_label)
from lakeforge.train.gate import CHAMPION, Promote, apply_gate, current_champion
from lakeforge.train.registry import ensure_experiment, mlflow_client, versions_with_tags
from lakeforge.train.report import feature_importance, log_evaluation_artifacts
from lakeforge.train.search import run_search

log = logging.getLogger(__name__)
__all__ = ["CHAMPION", "TrainResult", "config_hash", "train_model"]


@dataclass(frozen=True)
class TrainResult:
    run_id: str | None
    model_name: str
    model_version: int
    metrics: dict[str, float]
    champion: bool
    retrained: bool
    decision: dict | None = None


def config_hash(settings: Settings) -> str:
    spec = {"features": settings.features.model_dump(mode="json"), "model": settings.model.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _git_commit(root: str) -> str:
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _pip_requirements() -> list[str]:
    return [f"{p}=={package_version(p)}" for p in ("pyspark", "xgboost", "scikit-learn", "pandas", "pyarrow", "numpy")]


def _is_champion(client, name: str, version: int) -> bool:
    champion = current_champion(client, name)
    return champion is not None and int(champion.version) == version


def train_model(spark: SparkSession, settings: Settings, gold: GoldTable, *, force: bool = False,
                promote: Promote = "gate") -> TrainResult:
    """Train on ``gold`` (pinned to its version), log to MLflow, register as challenger, then apply the gate.

    Parameters, device and cluster are checked before any Spark job. Unless ``force``, a registered version
    already trained on the same gold version with the same feature and model settings is reused.
    """
    features, model = settings.features, settings.model
    validate_params(model.params)
    device = resolve_device(model.device, model.fallback_to_cpu)
    check_cluster(spark, model.num_workers)
    client = mlflow_client(settings.mlflow)
    lineage_tags = {"gold_table": gold.path, "gold_version": str(gold.version), "config_hash": config_hash(settings)}
    if not force:
        existing = versions_with_tags(client, model.registered_name, lineage_tags)
        if existing:
            mv = existing[0]
            logged = client.get_run(mv.run_id).data.metrics
            metrics = {k.removeprefix("holdout_"): v for k, v in logged.items() if k.startswith("holdout_")}
            log.info("model %s v%s already trained on %s; not retraining", model.registered_name, mv.version, lineage_tags)
            return TrainResult(mv.run_id, model.registered_name, int(mv.version), metrics,
                               _is_champion(client, model.registered_name, int(mv.version)), False)

    frame = with_label(spark.read.format("delta").option("versionAsOf", gold.version).load(gold.path), features)
    train, test = time_split(frame, features)
    balance = train.agg(F.count(F.lit(1)).alias("rows"), F.sum(LABEL_COL).alias("positives")).first()
    rows, positives = int(balance["rows"]), int(balance["positives"] or 0)
    if rows == 0 or test.isEmpty():
        raise ValueError(f"features.split: test_from={features.split.test_from} on '{features.split.column}' "
                         "leaves the train or the test split empty; pick a date inside the data")
    params = dict(model.params)
    if params.get("scale_pos_weight") == "auto":
        if positives == 0:
            raise ValueError("model.params.scale_pos_weight is auto, but the training split has no positive rows")
        params["scale_pos_weight"] = (rows - positives) / positives

    experiment_id = ensure_experiment(client, settings.mlflow)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tags({**lineage_tags, "git_commit": _git_commit(settings.project_root),
                         "lakeforge_version": lakeforge.__version__, "env": settings.env})
        search = run_search(spark, features, model, train, params, device)
        if search is not None:
            params = search.best_params
            mlflow.log_metrics({"search_best_validation_auc": search.best_validation_auc, "search_trials": search.trials})
            mlflow.set_tag("search_strategy", search.strategy)
        mlflow.log_params({**params, "num_workers": model.num_workers, "seed": model.seed, "device": device,
                           "split_column": features.split.column, "test_from": features.split.test_from,
                           "n_features": len(features.feature_columns)})
        mlflow.log_metrics({"train_rows": rows, "train_positive_rate": positives / rows})
        started = time.perf_counter()
        fitted = build_pipeline(features, model, params=params, device=device).fit(train)
        mlflow.log_metric("fit_seconds", time.perf_counter() - started)
        scored_test = positive_probability(fitted.transform(test)).persist()
        try:
            metrics = holdout_metrics(scored_test)
            mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
            evaluation = scored_test.select(LABEL_COL, SCORE_COL).toPandas()
        finally:
            scored_test.unpersist()
        log_baseline_profile(fitted, train, features, settings.monitor)  # monitoring/baseline_profile.json
        importance = feature_importance(fitted.stages[-1].get_booster(), assembled_features(features))
        log_evaluation_artifacts(evaluation[LABEL_COL].to_numpy(), evaluation[SCORE_COL].to_numpy(),
                                 settings.score.threshold, importance, metrics)

        example = test.select(*features.feature_columns).limit(5).toPandas()
        example_out = positive_probability(fitted.transform(test.limit(5))).select(SCORE_COL).toPandas()
        info = mlflow.spark.log_model(
            fitted, "model", signature=infer_signature(example, example_out), input_example=example,
            registered_model_name=model.registered_name, pip_requirements=_pip_requirements(),
        )
        version = int(info.registered_model_version)
        for key, value in {**lineage_tags, "holdout_auc": f"{metrics['auc']:.6f}"}.items():
            client.set_model_version_tag(model.registered_name, str(version), key, value)
        decision = apply_gate(client, model, version, metrics["auc"], test, promote)
        mlflow.log_dict(decision.as_dict(), "registry_gate.json")
        mlflow.set_tags({"promoted": str(decision.promoted).lower(), "gate_reason": decision.reason})
        if decision.champion_auc is not None:
            mlflow.log_metric("champion_holdout_auc", decision.champion_auc)
    return TrainResult(run.info.run_id, model.registered_name, version, metrics, decision.promoted, True,
                       decision.as_dict())
