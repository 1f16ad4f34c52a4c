"""Batch scoring: a registered model (fitted feature pipeline + xgboost) applied to a Delta table, written to
a predictions Delta table where every row names its model version, run, source data version and batch.

A batch is (model version, source table, source versions read): scoring the same batch again replaces its rows
(``replaceWhere`` on ``batch_id``), never duplicates them. ``incremental`` reads only the rows changed since
the last scored version through the source's Change Data Feed and records the version it reached.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

import mlflow
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.config import Settings
from lakeforge.errors import EmptyInputError, MissingInputError, PredictionsTableError
from lakeforge.models import SCORE, output_column
from lakeforge.models.load import load_registered
from lakeforge.models.registry import find_version, mlflow_client
from lakeforge.paths import entity_key, gold_table, predictions_table
from lakeforge.score.incremental import ChangeDataFeedError, changed_rows
from lakeforge.score.signature import SignatureMismatchError, check_signature
from lakeforge.spark import session_conf
from lakeforge.tables import Table, delta_version, last_commit, retry_on_conflict

log = logging.getLogger(__name__)
__all__ = ["ChangeDataFeedError", "EmptyInputError", "PredictionsTableError", "ScoreResult", "SignatureMismatchError",
           "check_signature", "latest_scored", "predictions_table", "score_table"]
ARROW_BATCH = "spark.sql.execution.arrow.maxRecordsPerBatch"


# What scoring reads back from the predictions table: a batch is replaced and found by these.
BATCH_COLUMNS = ("model_name", "model_version", "source_table", "source_version", "source_from_version", "batch_id")


@dataclass(frozen=True)
class ScoreResult:
    table: str
    table_version: int
    rows_written: int
    model_name: str
    model_version: int
    run_id: str
    source_table: str
    source_version: int
    batch_id: str | None = None
    source_from_version: int | None = None


def batch_id(model_name: str, model_version: int, source: str, from_version: int | None, to_version: int) -> str:
    """Stable id of one scoring batch: the same model version on the same source versions gives the same id."""
    spec = f"{model_name}|{model_version}|{source}|{'' if from_version is None else from_version}|{to_version}"
    return hashlib.sha256(spec.encode()).hexdigest()[:20]


def check_predictions_table(spark: SparkSession, target: str) -> None:
    """Refuse, before any job, a predictions table written without the lineage columns (an older lakeforge):
    its rows have no batch to be replaced by, so a rerun would duplicate instead of replace them."""
    if delta_version(spark, target) is None:
        return
    missing = [c for c in BATCH_COLUMNS if c not in Table.of(target).read(spark).columns]
    if missing:
        raise PredictionsTableError(
            f"predictions table {target} has no column(s) {', '.join(missing)}: it was written by an older "
            "lakeforge and its rows cannot be replaced by batch; move it aside (or delete it) and score again, or "
            "point score.table at a new table")


def _last_scored_version(spark: SparkSession, target: str, name: str, version: int, source: str) -> int | None:
    if delta_version(spark, target) is None:
        return None
    row = (Table.of(target).read(spark)
           .where((F.col("model_name") == name) & (F.col("model_version") == version) & (F.col("source_table") == source))
           .agg(F.max("source_version").alias("v")).first())
    return None if row["v"] is None else int(row["v"])


def score_table(
    spark: SparkSession,
    settings: Settings,
    *,
    model_name: str | None = None,
    alias: str | None = "champion",
    version: int | None = None,
    input_path: str | None = None,
    incremental: bool = False,
) -> ScoreResult:
    """Score the input table (the gold table by default) with the model named by alias or version.

    The model, the input and its schema are checked before any scoring job; nothing is written on failure.
    """
    name = model_name or settings.model.registered_name
    client = mlflow_client(settings.mlflow)
    mv = find_version(client, name, alias=None if version is not None else alias, version=version)
    source = Table.of(input_path) if input_path else gold_table(settings)
    source_version = delta_version(spark, source)
    if source_version is None:
        raise MissingInputError(f"input {source} is not a Delta table; build it first (jobs/train.py builds gold)")
    target = predictions_table(settings)
    check_predictions_table(spark, target)
    key = entity_key(settings)
    from_version = _last_scored_version(spark, target, name, int(mv.version), source) if incremental else None
    if from_version is not None and from_version >= source_version:
        log.info("%s v%s already scored %s through version %s; nothing changed since", name, mv.version, source,
                  from_version)
        return ScoreResult(str(target), delta_version(spark, target), 0, name, int(mv.version), mv.run_id, str(source),
                           source_version, None, from_version)
    if from_version is None:
        frame = source.read(spark, source_version)
    else:
        frame = changed_rows(spark, source, from_version, source_version, key)

    model_uri = f"models:/{name}/{mv.version}"
    signature = mlflow.models.get_model_info(model_uri).signature
    check_signature(frame, signature.inputs.to_dict(), source, source_version)
    if from_version is None and frame.isEmpty():
        raise EmptyInputError(f"input {source} (Delta version {source_version}) has no rows; nothing to score")
    features = settings.features
    task = mv.tags.get("task") or settings.model.task
    classify = task == "classification"
    model = load_registered(model_uri, task, settings.score.method)
    label = features.label if features.label in frame.columns else None
    wanted = [c for c in (*features.feature_columns, *([label] if label else [])) if c not in key]
    inputs = frame.select(*key, *[F.col(f"`{c}`").cast("double").alias(c) if c in features.numeric else F.col(f"`{c}`")
                                  for c in wanted])
    batch = batch_id(name, int(mv.version), source, from_version, source_version)
    with session_conf(spark, {ARROW_BATCH: str(settings.score.arrow_batch_rows)}):
        scored = model.score(inputs, keep=[*key, *([label] if label else [])])
        value = F.col(SCORE)
        label_type = "int" if classify else "double"
        # The table names the score by its meaning (models.output_column); a classifier also gets its 0/1 decision.
        outputs = ([value.alias(output_column(task)), (value >= settings.score.threshold).cast("int").alias("prediction")]
                   if classify else [F.lit(None).cast("double").alias("probability"), value.alias(output_column(task))])
        out = scored.select(
            *key,
            *outputs,
            (F.col(f"`{label}`") if label else F.lit(None)).cast(label_type).alias("label"),
            F.lit(name).alias("model_name"),
            F.lit(int(mv.version)).alias("model_version"),
            F.lit(mv.run_id).alias("run_id"),
            F.lit(str(source)).alias("source_table"),
            F.lit(source_version).cast("long").alias("source_version"),
            F.lit(from_version).cast("long").alias("source_from_version"),
            F.lit(batch).alias("batch_id"),
            F.current_timestamp().alias("scored_at"),
        )
        # Two scorers of one batch at once conflict on the replaced files: the loser re-runs its write (retried like
        # every Delta write lakeforge makes) and replaces the winner's rows with the same ones.
        retry_on_conflict(lambda: target.save(out.write.mode("overwrite").option("replaceWhere", f"batch_id = '{batch}'")
                                              .option("mergeSchema", "true"),
                                              user_metadata=json.dumps({"batch_id": batch})),
                          what=f"write batch {batch} to {target}")
    commit = last_commit(spark, target)  # the write's own row count: no second pass over the predictions
    table_version = commit["version"]
    ours = (commit["user_metadata"] or {}).get("batch_id") == batch  # not a concurrent writer's commit
    rows = commit["metrics"].get("numOutputRows") if ours else None
    if rows is None:
        rows = target.read(spark, table_version).where(F.col("batch_id") == batch).count()
    log.info("scored %s rows of %s (versions %s..%s) with %s v%s into %s as batch %s", rows, source,
             "start" if from_version is None else from_version + 1, source_version, name, mv.version, target, batch)
    return ScoreResult(str(target), table_version, rows, name, int(mv.version), mv.run_id, str(source), source_version, batch,
                       from_version)


def latest_scored(spark: SparkSession, settings: Settings, *, model_name: str | None = None,
                  alias: str | None = "champion", version: int | None = None) -> ScoreResult:
    """The most recent scoring batch of the model named by alias or version, read back from the predictions table."""
    name = model_name or settings.model.registered_name
    mv = find_version(mlflow_client(settings.mlflow), name, alias=None if version is not None else alias,
                      version=version)
    target = predictions_table(settings)
    table_version = delta_version(spark, target)
    if table_version is None:
        raise MissingInputError(f"no predictions table at {target}; run jobs/score.py first")
    rows = (target.read(spark)
            .where((F.col("model_name") == name) & (F.col("model_version") == int(mv.version)))
            .groupBy("batch_id", "source_table", "source_version", "source_from_version", "run_id")
            .agg(F.count(F.lit(1)).alias("rows"), F.max("scored_at").alias("scored_at"))
            .orderBy(F.col("scored_at").desc()).first())
    if rows is None:
        raise MissingInputError(f"{target} has no predictions of {name} version {mv.version}; score with it first")
    return ScoreResult(str(target), table_version, rows["rows"], name, int(mv.version), rows["run_id"],
                       rows["source_table"], rows["source_version"], rows["batch_id"], rows["source_from_version"])
