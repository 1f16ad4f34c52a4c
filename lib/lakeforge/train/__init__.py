"""Training: the gold table's split (time or stratified), optional k-fold cross-validation, the Spark ML
pipeline with ``xgboost.spark`` (classifier or regressor, early stopping on validation rows), MLflow tracking
with evaluation artifacts, registration as ``challenger``, and the registry gate that decides ``champion``."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from dataclasses import dataclass

import mlflow
import mlflow.data
from mlflow.models import infer_signature
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import lakeforge
from lakeforge.config import Settings
from lakeforge.errors import InputError, TrainingConfigError
from lakeforge.holdout import SPLIT_ARTIFACT
from lakeforge.liveness import owner_tags
from lakeforge.models import SCORE, TrainedModel, output_column
from lakeforge.models.profile import log_baseline_profile
from lakeforge.models.registry import ensure_experiment, mlflow_client, pinned_requirements, reap_orphaned_runs
from lakeforge.paths import entity_key
from lakeforge.tables import GoldTable, Table
from lakeforge.train import resume
from lakeforge.train.checks import check_cluster, resolve_device, validate_params
from lakeforge.train.estimator import LABEL_COL, holdout_metrics, with_label
from lakeforge.train.gate import CHAMPION, Promote, current_champion
from lakeforge.train.report import log_evaluation_artifacts, log_regression_artifacts
from lakeforge.train.serving import log_serving_model
from lakeforge.train.splits import holdout_split
from lakeforge.train.xgb import fit_xgboost

log = logging.getLogger(__name__)
__all__ = ["CHAMPION", "TrainResult", "config_hash", "entity_key", "train_model"]


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
    leaks = settings.future_joins()
    if leaks:
        raise TrainingConfigError("; ".join(f"{settings.origin(key) or '(default)'}: {key} {text}"
                                            for key, text in leaks.items()))
    torch_model = model.framework == "torch"
    if torch_model:
        from lakeforge.train.deep import check_deep

        workers = check_deep(spark, model.deep)
        device = "cuda" if model.deep.use_gpu else "cpu"
    else:
        validate_params(model.params)
        device = resolve_device(model.device, model.fallback_to_cpu)
        workers = check_cluster(spark, model.num_workers)
    classify = model.task == "classification"
    key = entity_key(settings)
    client = mlflow_client(settings.mlflow)
    experiment_id = ensure_experiment(client, settings.mlflow)
    reap_orphaned_runs(client, experiment_id)  # runs of a killed job: FAILED, not RUNNING forever
    lineage_tags = {"gold_table": gold.path, "gold_version": str(gold.version), "config_hash": config_hash(settings)}
    if not force:
        resumed = resume.resume(spark, settings, client, experiment_id, lineage_tags, _version_tags(settings, lineage_tags),
                                promote)
        if resumed is not None:
            run_id, version, metrics, decision, _ = resumed
            return TrainResult(run_id, model.registered_name, version, metrics,
                               _is_champion(client, model.registered_name, version), False, decision)

    frame = with_label(Table.of(gold.path).read(spark, gold.version), features)
    _check_columns(frame.columns, gold, features, model, key)
    train, test, split_spec = holdout_split(frame, features, key, model.seed, classify)
    balance = train.agg(F.count(F.lit(1)).alias("rows"), F.sum(LABEL_COL).alias("positives")).first()
    rows, positives = int(balance["rows"]), float(balance["positives"] or 0)
    if rows == 0 or test.isEmpty():
        raise InputError(f"features.split ({_describe_split(features)}) leaves the train or the test split empty; "
                         "pick a split inside the data")
    if rows < 2 * workers:
        raise TrainingConfigError(f"the training split has {rows} rows for {workers} xgboost.spark workers; a worker "
                                  "would get an empty partition and stall the barrier stage; lower model.num_workers")
    params = {} if torch_model else dict(model.params)
    if params.get("scale_pos_weight") == "auto":
        if not classify or positives == 0:
            raise InputError("model.params.scale_pos_weight is auto, which needs a classifier and positive rows in the "
                             "training split")
        params["scale_pos_weight"] = (rows - positives) / positives

    table = Table.of(gold.path)
    run_name = f"train {model.registered_name} on {table.short_name}@v{gold.version}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=owner_tags()) as run:
        mlflow.set_tags({**lineage_tags, "git_commit": _git_commit(settings.project_root),
                         "lakeforge_version": lakeforge.__version__, "env": settings.env, "task": model.task,
                         "framework": model.framework})
        mlflow.log_input(_training_dataset(frame, table, gold.version), context="training")
        mlflow.log_dict(split_spec, SPLIT_ARTIFACT)  # monitoring finds the rows the model was fitted on with it
        mlflow.log_metrics({"train_rows": rows, **({"train_positive_rate": positives / rows} if classify else {})})
        if torch_model:
            fitted = _fit_network(spark, settings, train, key, lineage_tags, workers=workers, device=device)
        else:
            fitted = fit_xgboost(spark, settings, train, key, params, device=device, workers=workers,
                                 describe_split=_describe_split(features))
        return _evaluate_and_register(spark, settings, client, fitted, train, test, lineage_tags, promote, run=run)


def _training_dataset(frame, table: Table, version: int):
    """The gold table at ``version`` as MLflow's dataset input. ``mlflow.data.from_spark(path=..., version=...)``
    recognises a Delta path on a local or DBFS file system only, and refuses ``s3a://``, ``abfss://``, ``gs://``:
    the Delta source is named itself there."""
    name = f"{table.short_name}@v{version}"
    if table.by_name:
        return mlflow.data.from_spark(frame, table_name=str(table), version=str(version), name=name)
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.spark_dataset import SparkDataset

    return SparkDataset(frame, DeltaDatasetSource(path=str(table), delta_table_version=version), name=name)


def _fit_network(spark: SparkSession, settings: Settings, train, key: list[str], lineage_tags: dict, *,
                 workers: int, device: str) -> TrainedModel:
    """The torch network's fit (``train.deep``), inside the active MLflow run."""
    from lakeforge.train.deep.trainer import train_network

    model, features = settings.model, settings.features
    mlflow.log_params({"num_processes": workers, "backend": model.deep.backend, "seed": model.seed,
                       "device": device, "task": model.task, "split": _describe_split(features),
                       "n_features": len(features.feature_columns), "weight_col": model.weight_col})
    fitted, _ = train_network(spark, settings, train, key, lineage_tags)
    return fitted


def _evaluate_and_register(spark: SparkSession, settings: Settings, client, fitted: TrainedModel, train, test,
                           lineage_tags: dict, promote: Promote, *, run) -> TrainResult:
    """Holdout metrics, baseline profile, evaluation plots, the logged and registered model, and the gate: the
    same for every ``TrainedModel`` (the xgboost pipeline, the torch network)."""
    features, model = settings.features, settings.model
    classify, metric = model.task == "classification", model.gate_metric
    scored_test = fitted.score(test, keep=[LABEL_COL]).persist()
    try:
        metrics = holdout_metrics(scored_test, model.task)
        mlflow.log_metric("test_rows", metrics["rows"])  # counted with the metrics, not in a pass of its own
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
        evaluation = scored_test.toPandas()
    finally:
        scored_test.unpersist()
    log_baseline_profile(fitted, train, features, settings.monitor)  # monitoring/baseline_profile.json
    labels, outputs = evaluation[LABEL_COL].to_numpy(), evaluation[SCORE].to_numpy()
    importance = fitted.importance()
    if classify:
        log_evaluation_artifacts(labels, outputs, settings.score.threshold, importance, metrics)
    else:
        log_regression_artifacts(labels, outputs, importance, metrics)

    example = test.select(*features.feature_columns).limit(5).toPandas()
    example_out = fitted.score(test.limit(5), keep=[]).withColumnRenamed(SCORE, output_column(model.task)).toPandas()
    signature = infer_signature(example, example_out)
    info = fitted.log_model(signature=signature, input_example=example,
                            pip_requirements=pinned_requirements(model.framework))
    gold_schema = Table.of(lineage_tags["gold_table"]).read(spark, int(lineage_tags["gold_version"])).schema
    serving = log_serving_model(settings, fitted, gold_schema, test)  # the Spark-free model, before the mark below
    # Each step leaves its mark (lakeforge.train.resume): a job killed after any of them is finished by its rerun.
    mlflow.set_tag(resume.MODEL_URI_TAG, info.model_uri)
    tags = {**_version_tags(settings, lineage_tags), f"holdout_{metric}": f"{metrics[metric]:.6f}", **serving}
    version = int(resume.register_version(client, settings, run.info.run_id, info.model_uri, tags).version)
    decision = resume.gate_and_record(client, settings, version, metrics[metric], test, promote, run.info.run_id)
    return TrainResult(run.info.run_id, model.registered_name, version, metrics, decision.promoted, True,
                       decision.as_dict())


def _version_tags(settings: Settings, lineage_tags: dict[str, str]) -> dict[str, str]:
    return {**lineage_tags, "task": settings.model.task, "framework": settings.model.framework}


def _describe_split(features) -> str:
    split = features.split
    if split.kind == "time":
        return f"time: {split.column} >= {split.test_from} is the holdout"
    return f"stratified: {split.test_fraction} held out"


def _check_columns(columns: list[str], gold: GoldTable, features, model, key: list[str]) -> None:
    """Columns the split, weights and stratification need, checked on the schema before any job."""
    wanted = {"features.split.column": features.split.column, "model.weight_col": model.weight_col}
    wanted.update({f"key column {k}": k for k in key} if features.split.kind == "stratified" else {})
    missing = [f"{what} '{c}'" for what, c in wanted.items() if c is not None and c not in columns]
    if missing:
        raise TrainingConfigError(f"gold table {gold.path} (version {gold.version}) has no {', '.join(missing)}; "
                                  "declare the column under features.derived or a join's select")
