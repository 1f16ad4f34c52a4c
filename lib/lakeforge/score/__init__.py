"""Batch scoring: a registered model (fitted feature pipeline + xgboost) applied to a Delta table, written to
a predictions Delta table where every row names its model version, run and source data version."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge.config import Settings
from lakeforge.features import gold_path
from lakeforge.tables import delta_version
from lakeforge.train.estimator import SCORE_COL, positive_probability
from lakeforge.train.registry import find_version, mlflow_client

log = logging.getLogger(__name__)

# MLflow signature type names -> the Spark types a column may have to satisfy them.
_COMPATIBLE = {
    "string": (T.StringType,),
    "double": (T.DoubleType, T.FloatType, T.IntegerType, T.LongType, T.ShortType, T.DecimalType),
    "float": (T.FloatType, T.IntegerType, T.ShortType),
    "long": (T.LongType, T.IntegerType, T.ShortType),
    "integer": (T.IntegerType, T.ShortType),
    "boolean": (T.BooleanType,),
}


class SignatureMismatchError(ValueError):
    """The input table does not provide what the model's signature requires; nothing was written."""


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


def predictions_path(settings: Settings) -> str:
    return settings.storage.table_path("predictions", settings.score.table)


def check_signature(frame: DataFrame, signature_inputs: list[dict], table: str, version: int) -> None:
    """Every input column of the signature must exist in ``frame`` with a compatible type."""
    fields = {f.name: f.dataType for f in frame.schema.fields}
    problems = []
    for spec in signature_inputs:
        name, expected = spec["name"], spec["type"]
        if name not in fields:
            problems.append(f"column '{name}' is missing (expected {expected})")
        elif not isinstance(fields[name], _COMPATIBLE.get(expected, ())):
            problems.append(f"column '{name}' has type {fields[name].simpleString()}, expected {expected}")
    if problems:
        raise SignatureMismatchError(f"input {table} (Delta version {version}) does not match the model's "
                                     f"signature: " + "; ".join(problems))


def score_table(
    spark: SparkSession,
    settings: Settings,
    *,
    alias: str | None = "champion",
    version: int | None = None,
    input_path: str | None = None,
) -> ScoreResult:
    """Score the input table (the gold table by default) with the model named by alias or version.

    Re-scoring with the same model version replaces that version's rows (``replaceWhere``): no duplicates.
    """
    name = settings.model.registered_name
    client = mlflow_client(settings.mlflow)
    mv = find_version(client, name, alias=None if version is not None else alias, version=version)
    source = input_path or gold_path(settings)
    source_version = delta_version(spark, source)
    if source_version is None:
        raise FileNotFoundError(f"input {source} is not a Delta table; build it first (jobs/train.py builds gold)")
    frame = spark.read.format("delta").option("versionAsOf", source_version).load(source)
    if frame.isEmpty():
        raise ValueError(f"input {source} (Delta version {source_version}) has no rows; nothing to score")

    model_uri = f"models:/{name}/{mv.version}"
    signature = mlflow.models.get_model_info(model_uri).signature
    check_signature(frame, signature.inputs.to_dict(), source, source_version)
    model = mlflow.spark.load_model(model_uri)

    features = settings.features
    key = list(settings.sources[features.base].primary_key)
    wanted = [c for c in (*features.feature_columns, features.label) if c not in key]
    inputs = frame.select(*key, *[F.col(f"`{c}`").cast("double").alias(c) if c in features.numeric else F.col(f"`{c}`")
                                  for c in wanted])
    scored = positive_probability(model.transform(inputs))
    out = scored.select(
        *key,
        F.col(SCORE_COL).alias("probability"),
        (F.col(SCORE_COL) >= settings.score.threshold).cast("int").alias("prediction"),
        F.col(f"`{features.label}`").cast("int").alias("label"),
        F.lit(name).alias("model_name"),
        F.lit(int(mv.version)).alias("model_version"),
        F.lit(mv.run_id).alias("run_id"),
        F.lit(source).alias("source_table"),
        F.lit(source_version).cast("long").alias("source_version"),
        F.current_timestamp().alias("scored_at"),
    )
    target = predictions_path(settings)
    (out.write.format("delta").mode("overwrite")
     .option("replaceWhere", f"model_version = {int(mv.version)}")
     .save(target))
    table_version = delta_version(spark, target)
    rows = (spark.read.format("delta").option("versionAsOf", table_version).load(target)
            .where(F.col("model_version") == int(mv.version)).count())
    log.info("scored %s rows of %s v%s with %s v%s into %s", rows, source, source_version, name, mv.version, target)
    return ScoreResult(target, table_version, rows, name, int(mv.version), mv.run_id, source, source_version)


def latest_scored(spark: SparkSession, settings: Settings, *, alias: str | None = "champion",
                  version: int | None = None) -> ScoreResult:
    """The most recent scoring of the model named by alias or version, read back from the predictions table."""
    name = settings.model.registered_name
    mv = find_version(mlflow_client(settings.mlflow), name, alias=None if version is not None else alias,
                      version=version)
    target = predictions_path(settings)
    table_version = delta_version(spark, target)
    if table_version is None:
        raise FileNotFoundError(f"no predictions table at {target}; run jobs/score.py first")
    rows = (spark.read.format("delta").load(target).where(F.col("model_version") == int(mv.version))
            .groupBy("source_table", "source_version", "run_id").agg(F.count(F.lit(1)).alias("rows"),
                                                                     F.max("scored_at").alias("scored_at"))
            .orderBy(F.col("scored_at").desc()).first())
    if rows is None:
        raise FileNotFoundError(f"{target} has no predictions of {name} version {mv.version}; score with it first")
    return ScoreResult(target, table_version, rows["rows"], name, int(mv.version), rows["run_id"],
                       rows["source_table"], rows["source_version"])
