"""Silver tables: created from the contract (NOT NULL keys, CHECK constraints, Change Data Feed), fed by
deduplicated batches through Delta MERGE (insert new keys, update a key only with a newer event)."""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakeforge.config import SourceSpec
from lakeforge.tables import idempotent_dml

SILVER_LINEAGE = (("_batch_id", "string"), ("_ingested_at", "timestamp"))


def ensure_silver_table(spark: SparkSession, path: str, source: SourceSpec) -> DeltaTable:
    """Create the silver table for ``source`` at ``path`` if it does not exist, with its constraints."""
    if DeltaTable.isDeltaTable(spark, path):
        return DeltaTable.forPath(spark, path)
    builder = (DeltaTable.createIfNotExists(spark).location(path)
               .property("delta.enableChangeDataFeed", "true")
               .comment(f"lakeforge silver table of source '{source.name}'"))
    for column in source.columns:
        nullable = column.nullable and column.name not in source.primary_key
        builder = builder.addColumn(column.name, column.type, nullable=nullable)
    for name, dtype in SILVER_LINEAGE:
        builder = builder.addColumn(name, dtype, nullable=False)
    table = builder.execute()
    for column in source.columns:
        if column.check:
            # Delta fails a CHECK that evaluates to NULL; a null value is governed by nullability instead.
            rule = f"`{column.name}` IS NULL OR ({column.check})"
            spark.sql(f"ALTER TABLE delta.`{path}` ADD CONSTRAINT {column.name}_check CHECK ({rule})")
    return table


def latest_per_key(rows: DataFrame, source: SourceSpec) -> DataFrame:
    """One row per primary key: the latest ``event_time``; ties broken by a hash of the row, so reruns agree."""
    order = [F.xxhash64(*[F.col(f"`{c}`") for c in source.column_names]).desc()]
    if source.event_time:
        order.insert(0, F.col(f"`{source.event_time}`").desc_nulls_last())
    window = Window.partitionBy(*[F.col(f"`{k}`") for k in source.primary_key]).orderBy(*order)
    return rows.withColumn("__rank", F.row_number().over(window)).where("__rank = 1").drop("__rank")


def merge_into_silver(spark: SparkSession, path: str, source: SourceSpec, rows: DataFrame, batch_id: str) -> bool:
    """MERGE deduplicated ``rows`` into silver, at most once per batch. Returns False if it was already merged."""
    table = ensure_silver_table(spark, path, source)
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in source.primary_key)
    if source.event_time:
        newer = f"s.`{source.event_time}` > t.`{source.event_time}`"
    else:  # no event time: a re-delivered identical row changes nothing, a changed row replaces the old one
        values = [c for c in source.column_names if c not in source.primary_key]
        newer = " OR ".join(f"NOT (s.`{c}` <=> t.`{c}`)" for c in values) or "false"
    version_before = table.history(1).select("version").first()[0]
    with idempotent_dml(spark, app_id=f"lakeforge-silver:{source.name}:{batch_id}"):
        (table.alias("t").merge(rows.alias("s"), on)
         .whenMatchedUpdateAll(condition=newer)
         .whenNotMatchedInsertAll()
         .execute())
    return table.history(1).select("version").first()[0] != version_before
