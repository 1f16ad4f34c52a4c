"""Training: the gold table's time split, the Spark ML pipeline with ``xgboost.spark``, MLflow tracking
and registration. The registered version becomes ``champion`` when its holdout AUC clears ``model.min_auc``."""

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
from lakeforge.train.estimator import SCORE_COL, build_pipeline, holdout_metrics, positive_probability, with_label
from lakeforge.train.registry import ensure_experiment, mlflow_client, versions_with_tags

log = logging.getLogger(__name__)
CHAMPION = "champion"


@dataclass(frozen=True)
class TrainResult:
    run_id: str | None
    model_name: str
    model_version: int
    metrics: dict[str, float]
    champion: bool
    retrained: bool


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


def _promote(client, settings: Settings, version: int, auc: float) -> bool:
    """Alias ``version`` champion when its holdout AUC reaches ``model.min_auc``."""
    name, floor = settings.model.registered_name, settings.model.min_auc
    if auc < floor:
        log.warning("holdout AUC %.4f is below model.min_auc %.4f: %s v%s is not champion", auc, floor, name, version)
        return False
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return True


def train_model(spark: SparkSession, settings: Settings, gold: GoldTable, *, force: bool = False) -> TrainResult:
    """Train on ``gold`` (pinned to its version), log to MLflow, register, and alias champion if good enough.

    Unless ``force``, a registered version already trained on the same gold version with the same
    feature and model settings is reused instead of training again.
    """
    features, model = settings.features, settings.model
    client = mlflow_client(settings.mlflow)
    lineage_tags = {"gold_table": gold.path, "gold_version": str(gold.version), "config_hash": config_hash(settings)}
    if not force:
        existing = versions_with_tags(client, model.registered_name, lineage_tags)
        if existing:
            mv = existing[0]
            logged = client.get_run(mv.run_id).data.metrics
            metrics = {k.removeprefix("holdout_"): v for k, v in logged.items() if k.startswith("holdout_")}
            log.info("model %s v%s already trained on %s; not retraining", model.registered_name, mv.version, lineage_tags)
            champion = _promote(client, settings, int(mv.version), metrics["auc"])
            return TrainResult(mv.run_id, model.registered_name, int(mv.version), metrics, champion, False)

    frame = with_label(spark.read.format("delta").option("versionAsOf", gold.version).load(gold.path), features)
    split_at = F.lit(features.split.test_from).cast(frame.schema[features.split.column].dataType)
    train = frame.where(F.col(features.split.column) < split_at)
    test = frame.where(F.col(features.split.column) >= split_at)
    if train.isEmpty() or test.isEmpty():
        raise ValueError(f"features.split: test_from={features.split.test_from} on '{features.split.column}' "
                         "leaves the train or the test split empty; pick a date inside the data")

    experiment_id = ensure_experiment(client, settings.mlflow)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tags({**lineage_tags, "git_commit": _git_commit(settings.project_root),
                         "lakeforge_version": lakeforge.__version__, "env": settings.env})
        mlflow.log_params({**model.params, "num_workers": model.num_workers, "seed": model.seed,
                           "split_column": features.split.column, "test_from": features.split.test_from,
                           "n_features": len(features.feature_columns)})
        started = time.perf_counter()
        fitted = build_pipeline(features, model).fit(train)
        mlflow.log_metric("fit_seconds", time.perf_counter() - started)
        metrics = holdout_metrics(fitted.transform(test))
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
        mlflow.log_metric("train_rows", train.count())

        example = test.select(*features.feature_columns).limit(5).toPandas()
        example_out = positive_probability(fitted.transform(test.limit(5))).select(SCORE_COL).toPandas()
        info = mlflow.spark.log_model(
            fitted, "model", signature=infer_signature(example, example_out),
            registered_model_name=model.registered_name, pip_requirements=_pip_requirements(),
        )
        version = int(info.registered_model_version)
        for key, value in {**lineage_tags, "holdout_auc": f"{metrics['auc']:.6f}"}.items():
            client.set_model_version_tag(model.registered_name, str(version), key, value)
        champion = _promote(client, settings, version, metrics["auc"])
        mlflow.set_tag("promoted", str(champion).lower())
    return TrainResult(run.info.run_id, model.registered_name, version, metrics, champion, True)
