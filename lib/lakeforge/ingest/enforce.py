"""Enforcing a source contract on raw rows: cast, nullability and CHECK rules, with a reason per failure."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeforge.config import ColumnSpec, SourceSpec

RAW_PREFIX = "__raw_"
REASONS = "_reasons"


def _raw(name: str) -> Column:
    return F.col(f"`{RAW_PREFIX}{name}`")


def _reason(column: ColumnSpec) -> list[Column]:
    """Reason strings (or null) for the three ways a value can break ``column``'s contract."""
    name, raw, typed = column.name, _raw(column.name), F.col(f"`{column.name}`")
    shown = F.concat(F.lit("'"), raw, F.lit("'"))
    reasons = [
        F.when(raw.isNotNull() & typed.isNull(),
               F.concat(F.lit(f"column '{name}': cannot cast "), shown, F.lit(f" to {column.type}"))),
    ]
    if not column.nullable:
        reasons.append(F.when(raw.isNull(), F.lit(f"column '{name}': null in a non-nullable column")))
    if column.check:
        passes = F.coalesce(F.expr(column.check), F.lit(True))
        reasons.append(F.when(typed.isNotNull() & ~passes,
                              F.concat(F.lit(f"column '{name}': value "), shown,
                                       F.lit(f" violates check `{column.check}`"))))
    return reasons


def enforce(batch: DataFrame, source: SourceSpec) -> DataFrame:
    """Typed columns, the untouched lineage columns, ``__raw_*`` copies and ``_reasons`` (empty = valid)."""
    lineage = [c for c in batch.columns if c.startswith("_") and c not in source.column_names]
    typed = batch.select(
        *[F.expr(f"try_cast(`{c.name}` AS {c.type})").alias(c.name) for c in source.columns],
        *[F.col(f"`{c.name}`").alias(f"{RAW_PREFIX}{c.name}") for c in source.columns],
        *lineage,
    )
    reasons = [r for column in source.columns for r in _reason(column)]
    return typed.withColumn(REASONS, F.filter(F.array(*reasons), lambda r: r.isNotNull()))


def valid_rows(enforced: DataFrame, source: SourceSpec) -> DataFrame:
    lineage = [c for c in enforced.columns if c.startswith("_") and not c.startswith(RAW_PREFIX) and c != REASONS]
    return enforced.where(F.size(REASONS) == 0).select(*source.column_names, *lineage)


def quarantine_rows(enforced: DataFrame, source: SourceSpec) -> DataFrame:
    """Rejected rows: the raw record as JSON, every reason, and the batch's lineage."""
    raw_record = F.to_json(F.struct(*[_raw(c).alias(c) for c in source.column_names]))
    return enforced.where(F.size(REASONS) > 0).select(
        F.lit(source.name).alias("source"),
        "_batch_id", "_source_file", "_ingested_at",
        raw_record.alias("raw_record"),
        F.col(REASONS).alias("reasons"),
        F.array_join(REASONS, "; ").alias("reason"),
        F.current_timestamp().alias("quarantined_at"),
    )
