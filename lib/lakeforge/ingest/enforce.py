"""Enforcing a source contract on raw rows: cast, nullability and CHECK rules, with a reason per failure."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeforge.config import ColumnSpec, SourceSpec
from lakeforge.ingest.pii import masked
from lakeforge.ingest.read import CORRUPT

RAW_PREFIX = "__raw_"
REASONS = "_reasons"


def _raw(name: str) -> Column:
    return F.col(f"`{RAW_PREFIX}{name}`")


def _reason(column: ColumnSpec, pii: tuple[str, ...]) -> list[Column]:
    """Reason strings (or null) for the three ways a value can break ``column``'s contract."""
    name, raw, typed = column.name, _raw(column.name), F.col(f"`{column.name}`")
    shown = F.lit("<redacted>") if name in pii else F.concat(F.lit("'"), raw, F.lit("'"))
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
    reasons = [r for column in source.columns for r in _reason(column, source.pii)]
    if CORRUPT in batch.columns:  # a malformed line: its fields cannot be trusted, whatever they parsed to
        shown = F.lit("<redacted: the source has PII columns>") if source.pii else F.col(CORRUPT)
        reasons.insert(0, F.when(F.col(CORRUPT).isNotNull(), F.concat(F.lit("malformed record: "), shown)))
    return typed.withColumn(REASONS, F.filter(F.array(*reasons), lambda r: r.isNotNull()))


def valid_rows(enforced: DataFrame, source: SourceSpec) -> DataFrame:
    lineage = [c for c in enforced.columns
               if c.startswith("_") and not c.startswith(RAW_PREFIX) and c not in (REASONS, CORRUPT)]
    return enforced.where(F.size(REASONS) == 0).select(*source.column_names, *lineage)


def _quarantine(frame: DataFrame, source: SourceSpec, record: Column, reasons: Column, kind: str) -> DataFrame:
    return frame.select(
        F.lit(source.name).alias("source"),
        "_batch_id", "_source_file", "_ingested_at",
        record.alias("raw_record"),
        reasons.alias("reasons"),
        F.array_join(reasons, "; ").alias("reason"),
        F.lit(kind).alias("reason_kind"),
        F.current_timestamp().alias("quarantined_at"),
    )


def quarantine_rows(enforced: DataFrame, source: SourceSpec, pii_key: bytes | None) -> DataFrame:
    """Rows breaking the contract: the raw record as JSON (PII hashed), every reason, the batch's lineage."""
    record = F.to_json(F.struct(*[masked(f"{RAW_PREFIX}{c}", pii_key, tuple(RAW_PREFIX + p for p in source.pii)).alias(c)
                                  for c in source.column_names]))
    return _quarantine(enforced.where(F.size(REASONS) > 0), source, record, F.col(REASONS), "contract")


def duplicate_rows(losers: DataFrame, source: SourceSpec, pii_key: bytes | None) -> DataFrame:
    """Rows that lost to a later row of the same key within the batch, with that key (PII hashed) as reason."""
    def shown(c: str) -> Column:
        return masked(c, pii_key, source.pii).cast("string")

    record = F.to_json(F.struct(*[shown(c).alias(c) for c in source.column_names]))
    key = F.concat_ws(", ", *[F.concat(F.lit(f"{k}="), F.coalesce(shown(k), F.lit("null"))) for k in source.primary_key])
    why = "a later row of the same key in this batch won" if source.event_time else "another row of the same key in this batch was kept"
    reason = F.array(F.concat(F.lit("duplicate key ("), key, F.lit(f"): {why}")))
    return _quarantine(losers, source, record, reason, "duplicate")
