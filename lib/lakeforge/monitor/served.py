"""Served traffic as a monitoring batch: the inference log (``lakeforge serve``) holds each served record's features
and output, so a batch of it is monitored like a batch of the predictions table, with itself as the source."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.config import Settings
from lakeforge.errors import MissingInputError
from lakeforge.models.registry import find_version, mlflow_client
from lakeforge.paths import inference_log_table
from lakeforge.tables import delta_version


@dataclass(frozen=True)
class ServedBatch:
    """A batch of the inference log (one of its writes): its rows carry their features, so it is its own source."""

    table: str
    table_version: int
    model_name: str
    model_version: int
    source_table: str
    source_version: int
    batch_id: str | None
    rows: int


def served_batch(spark: SparkSession, settings: Settings, *, alias: str | None = "champion",
                 version: int | None = None, batch_id: str | None = None) -> ServedBatch:
    """The latest batch of the inference log served by the model named by alias or version (or ``batch_id``)."""
    name = settings.serve.model or settings.model.registered_name
    mv = find_version(mlflow_client(settings.mlflow), name, alias=None if version is not None else alias,
                      version=version)
    table = inference_log_table(settings)
    table_version = delta_version(spark, table)
    if table_version is None:
        raise MissingInputError(f"no inference log at {table}; serve the model first (lakeforge serve --env "
                                f"{settings.env})")
    rows = table.read(spark, table_version).where(
        (F.col("model_name") == name) & (F.col("model_version") == int(mv.version)))
    if batch_id is not None:
        rows = rows.where(F.col("batch_id") == batch_id)
    latest = (rows.groupBy("batch_id").agg(F.count(F.lit(1)).alias("rows"), F.max("received_at").alias("last"))
              .orderBy(F.col("last").desc()).first())
    if latest is None:
        what = f"batch {batch_id}" if batch_id else "rows"
        raise MissingInputError(f"{table} has no {what} served by {name} version {mv.version}")
    return ServedBatch(str(table), table_version, name, int(mv.version), str(table), table_version,
                       latest["batch_id"], int(latest["rows"]))
