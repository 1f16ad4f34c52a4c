"""Silver tables: created from the contract (NOT NULL keys, CHECK constraints, Change Data Feed), fed by
deduplicated batches through Delta MERGE (insert new keys, update a key only with a newer event)."""

from __future__ import annotations

import logging

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge.config import SourceSpec
from lakeforge.errors import InputError
from lakeforge.tables import Table, idempotent_dml, retry_on_conflict

log = logging.getLogger(__name__)
SILVER_LINEAGE = (("_batch_id", "string"), ("_ingested_at", "timestamp"))
RANK = "__rank"
COUNT = "__n"


def silver_type(source: SourceSpec, column: str, declared: str) -> str:
    return "string" if column in source.pii else declared  # a PII column holds its HMAC hex digest


def _check_constraints(source: SourceSpec) -> dict[str, str]:
    """CHECK constraint name -> rule. Delta fails a CHECK that evaluates to NULL; a null value is governed by
    nullability instead, hence ``IS NULL OR``. PII columns hold digests, so their rules apply before hashing only."""
    return {f"{c.name}_check": f"`{c.name}` IS NULL OR ({c.check})"
            for c in source.columns if c.check and c.name not in source.pii}


def _create_silver_table(spark: SparkSession, table: Table, source: SourceSpec) -> None:
    """One commit: schema, Change Data Feed and the CHECK constraints (as the ``delta.constraints.*`` properties
    that ``ADD CONSTRAINT`` would write, one commit each, on an empty table)."""
    builder = (table.create_builder(spark)
               .property("delta.enableChangeDataFeed", "true")
               .comment(f"lakeforge silver table of source '{source.name}'"))
    for name, rule in _check_constraints(source).items():
        builder = builder.property(f"delta.constraints.{name}", rule)
    for column in source.columns:
        nullable = column.nullable and column.name not in source.primary_key
        builder = builder.addColumn(column.name, silver_type(source, column.name, column.type), nullable=nullable)
    for name, dtype in SILVER_LINEAGE:
        builder = builder.addColumn(name, dtype, nullable=False)
    if source.partition_by:
        builder = builder.partitionedBy(*source.partition_by)
    builder.execute()


def ensure_silver_table(spark: SparkSession, path: Table | str, source: SourceSpec) -> DeltaTable:
    """Create the silver table for ``source`` if needed; add columns an additive source gained."""
    silver = Table.of(path)
    if not silver.exists(spark):
        retry_on_conflict(lambda: _create_silver_table(spark, silver, source), what=f"creating silver table {path}")
    table = silver.delta(spark)
    present = set(table.toDF().columns)
    new = [c for c in source.columns if c.name not in present]
    if new:
        if source.schema_evolution != "additive":
            raise InputError(f"silver table {path} lacks column(s) {[c.name for c in new]} of source '{source.name}', "
                             "whose schema_evolution is strict; evolve the table or the contract first")
        ddl = ", ".join(f"`{c.name}` {silver_type(source, c.name, c.type)}" for c in new)
        retry_on_conflict(lambda: spark.sql(f"ALTER TABLE {silver.sql} ADD COLUMNS ({ddl})"),
                          what=f"evolving {path}")
        log.warning("source '%s' (schema_evolution: additive): added column(s) %s to silver table %s",
                    source.name, [c.name for c in new], path)
    return table


def rank_by_key(rows: DataFrame, source: SourceSpec) -> DataFrame:
    """``__rank`` 1 marks the row kept per primary key: the latest ``event_time``, ties broken by a hash of the
    row so that reruns keep the same one."""
    order = [F.xxhash64(*[F.col(f"`{c}`") for c in source.column_names]).desc()]
    if source.event_time:
        order.insert(0, F.col(f"`{source.event_time}`").desc_nulls_last())
    window = Window.partitionBy(*[F.col(f"`{k}`") for k in source.primary_key]).orderBy(*order)
    return rows.withColumn(RANK, F.row_number().over(window))


def duplicate_keys(rows: DataFrame, source: SourceSpec) -> DataFrame:
    """The keys held by more than one row, with their row count ``__n`` (a shuffle of the key columns only)."""
    return (rows.groupBy(*[F.col(f"`{k}`") for k in source.primary_key]).agg(F.count(F.lit(1)).alias(COUNT))
            .where(F.col(COUNT) > 1))


def split_duplicates(rows: DataFrame, source: SourceSpec, keys: list | None) -> tuple[DataFrame, DataFrame | None]:
    """(kept, losers): the rows to keep (one per key) and those that lost to a row of the same key.

    ``keys`` are the rows of ``duplicate_keys`` when they were few enough to collect: only the rows whose key
    hashes like one of them are ranked (a hash collision only means a unique key is ranked alone and kept),
    the others pass through untouched, with no join and no shuffle. With no duplicate, nothing is ranked;
    with ``keys=None`` (too many to collect) every row is ranked.
    """
    if keys is None:
        ranked = rank_by_key(rows, source)
        return ranked.where(F.col(RANK) == 1).drop(RANK), ranked.where(F.col(RANK) > 1).drop(RANK)
    if not keys:
        return rows, None
    fields = [rows.schema[k] for k in source.primary_key]
    schema = T.StructType([T.StructField(f.name, f.dataType, True) for f in fields])
    hashes = sorted({h for (h,) in rows.sparkSession.createDataFrame([tuple(k[f.name] for f in fields) for k in keys], schema)
                     .select(_key_hash(source)).collect()})
    contested = _key_hash(source).isin(hashes)
    ranked = rank_by_key(rows.where(contested), source)
    kept = rows.where(~contested).unionByName(ranked.where(F.col(RANK) == 1).drop(RANK))
    return kept, ranked.where(F.col(RANK) > 1).drop(RANK)


def _key_hash(source: SourceSpec):
    return F.xxhash64(*[F.col(f"`{k}`") for k in source.primary_key])


def merge_into_silver(spark: SparkSession, path: Table | str, source: SourceSpec, rows: DataFrame, batch_id: str,
                      watermark: str | None = None) -> bool:
    """MERGE deduplicated ``rows`` into silver, at most once per batch. Returns False if it was already merged.

    The commit records the batch id and, for incremental sources, the watermark the batch reached. Into an
    empty table the MERGE is insert-only (no join against target rows); should a concurrent writer fill the
    table meanwhile, Delta's conflict check fails the commit and the retry runs the full MERGE.
    """
    table = ensure_silver_table(spark, path, source)
    for field in table.toDF().schema.fields:  # columns an earlier additive batch brought and this one lacks
        if field.name not in rows.columns:
            rows = rows.withColumn(field.name, F.lit(None).cast(field.dataType))
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in source.primary_key)
    if source.event_time:
        newer = f"s.`{source.event_time}` > t.`{source.event_time}`"
    else:  # no event time: a re-delivered identical row changes nothing, a changed row replaces the old one
        values = [c for c in source.column_names if c not in source.primary_key]
        newer = " OR ".join(f"NOT (s.`{c}` <=> t.`{c}`)" for c in values) or "false"

    def merge() -> bool:
        before = table.history(1).select("version").first()[0]
        metadata = {"batch_id": batch_id, **({"watermark": watermark} if watermark is not None else {})}
        empty = spark.sql(f"DESCRIBE DETAIL {Table.of(path).sql}").first()["numFiles"] == 0
        with idempotent_dml(spark, app_id=f"lakeforge-silver:{source.name}:{batch_id}", user_metadata=metadata):
            builder = table.alias("t").merge(rows.alias("s"), on)
            if not empty:
                builder = builder.whenMatchedUpdateAll(condition=newer)
            builder.whenNotMatchedInsertAll().execute()
        return table.history(1).select("version").first()[0] != before

    return retry_on_conflict(merge, what=f"merging batch {batch_id} into {path}")
