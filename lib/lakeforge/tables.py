"""Small helpers over Delta tables addressed by path (``DeltaTable.forPath(spark, path)`` style)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any, Iterator

from delta.tables import DeltaTable
from pyspark.sql import SparkSession


def delta_version(spark: SparkSession, path: str) -> int | None:
    """Current version of the Delta table at ``path``, or None when there is no table."""
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def last_commit(spark: SparkSession, path: str) -> dict[str, Any]:
    """The newest commit of the table: version, operation, operationMetrics and parsed userMetadata."""
    row = DeltaTable.forPath(spark, path).history(1).first()
    metadata = row["userMetadata"]
    return {
        "version": int(row["version"]),
        "operation": row["operation"],
        "metrics": {k: int(v) for k, v in (row["operationMetrics"] or {}).items() if v.isdigit()},
        "user_metadata": json.loads(metadata) if metadata else None,
    }


@contextmanager
def idempotent_dml(spark: SparkSession, app_id: str, version: int = 0) -> Iterator[None]:
    """Run a Delta DML (MERGE, UPDATE, DELETE) at most once per ``(app_id, version)``.

    Delta records the pair in the commit; a later DML under the same pair is skipped. The session
    settings are removed again afterwards, whatever happens.
    """
    spark.conf.set("spark.databricks.delta.write.txnAppId", app_id)
    spark.conf.set("spark.databricks.delta.write.txnVersion", str(version))
    try:
        yield
    finally:
        spark.conf.unset("spark.databricks.delta.write.txnAppId")
        spark.conf.unset("spark.databricks.delta.write.txnVersion")
