"""Enforcing a source contract on raw rows: cast, nullability and CHECK rules, with a reason per failure.

The hot path only needs to know whether a row is valid: ``enforce`` adds one boolean (``_valid``), a plain
conjunction Spark generates code for. The human-readable reasons (an array built with a higher-order function)
are computed only for the rejected rows, in ``quarantine_rows``.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeforge.config import ColumnSpec, SourceSpec
from lakeforge.ingest.pii import hash_columns
from lakeforge.ingest.read import CORRUPT

RAW_PREFIX = "__raw_"
REASONS = "_reasons"
VALID = "_valid"


def _raw(name: str) -> Column:
    return F.col(f"`{RAW_PREFIX}{name}`")


def _violations(column: ColumnSpec, pii: tuple[str, ...]) -> list[tuple[Column, Column]]:
    """(condition, reason) for each way a value can break ``column``'s contract."""
    name, raw, typed = column.name, _raw(column.name), F.col(f"`{column.name}`")
    shown = F.lit("<redacted>") if name in pii else F.concat(F.lit("'"), raw, F.lit("'"))
    target = column.type if column.format is None else f"{column.type} (format {column.format})"
    found = [(raw.isNotNull() & typed.isNull(),
              F.concat(F.lit(f"column '{name}': cannot cast "), shown, F.lit(f" to {target}")))]
    if not column.nullable:
        found.append((raw.isNull(), F.lit(f"column '{name}': null in a non-nullable column")))
    if column.check:
        passes = F.coalesce(F.expr(column.check), F.lit(True))
        found.append((typed.isNotNull() & ~passes,
                      F.concat(F.lit(f"column '{name}': value "), shown, F.lit(f" violates check `{column.check}`"))))
    return found


def _all_violations(frame: DataFrame, source: SourceSpec) -> list[tuple[Column, Column]]:
    found = [v for column in source.columns for v in _violations(column, source.pii)]
    if CORRUPT in frame.columns:  # a malformed line: its fields cannot be trusted, whatever they parsed to
        shown = F.lit("<redacted: the source has PII columns>") if source.pii else F.col(CORRUPT)
        found.insert(0, (F.col(CORRUPT).isNotNull(), F.concat(F.lit("malformed record: "), shown)))
    return found


def typed_value(column: ColumnSpec) -> Column:
    """The raw value cast to the contract's type; null when it does not cast (a date or timestamp with a
    ``format`` is parsed with that pattern)."""
    if column.format is not None:
        parsed = f"try_to_timestamp(CAST(`{column.name}` AS STRING), '{column.format}')"
        return F.expr(parsed if column.type == "timestamp" else f"CAST({parsed} AS DATE)")
    return F.expr(f"try_cast(`{column.name}` AS {column.type})")


def enforce(batch: DataFrame, source: SourceSpec) -> DataFrame:
    """Typed columns, the untouched lineage columns, ``__raw_*`` copies and ``_valid`` (no rule broken)."""
    lineage = [c for c in batch.columns if c.startswith("_") and c not in source.column_names]
    typed = batch.select(
        *[typed_value(c).alias(c.name) for c in source.columns],
        *[F.col(f"`{c.name}`").alias(f"{RAW_PREFIX}{c.name}") for c in source.columns],
        *lineage,
    )
    broken = [condition for condition, _ in _all_violations(typed, source)]
    invalid = broken[0]
    for condition in broken[1:]:
        invalid = invalid | condition
    return typed.withColumn(VALID, ~F.coalesce(invalid, F.lit(False)))


def valid_rows(enforced: DataFrame, source: SourceSpec) -> DataFrame:
    lineage = [c for c in enforced.columns
               if c.startswith("_") and not c.startswith(RAW_PREFIX) and c not in (VALID, REASONS, CORRUPT)]
    return enforced.where(F.col(VALID)).select(*source.column_names, *lineage)


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
    rejected = enforced.where(~F.col(VALID))
    reasons = F.filter(F.array(*[F.when(condition, reason) for condition, reason in _all_violations(rejected, source)]),
                       lambda r: r.isNotNull())
    rejected = hash_columns(rejected.withColumn(REASONS, reasons), [RAW_PREFIX + p for p in source.pii], pii_key)
    record = F.to_json(F.struct(*[_raw(c).alias(c) for c in source.column_names]))
    return _quarantine(rejected, source, record, F.col(REASONS), "contract")


def duplicate_rows(losers: DataFrame, source: SourceSpec, pii_key: bytes | None) -> DataFrame:
    """Rows that lost to a later row of the same key within the batch, with that key (PII hashed) as reason."""
    losers = hash_columns(losers, source.pii, pii_key)

    def shown(c: str) -> Column:
        return F.col(f"`{c}`").cast("string")

    record = F.to_json(F.struct(*[shown(c).alias(c) for c in source.column_names]))
    key = F.concat_ws(", ", *[F.concat(F.lit(f"{k}="), F.coalesce(shown(k), F.lit("null"))) for k in source.primary_key])
    why = "a later row of the same key in this batch won" if source.event_time else "another row of the same key in this batch was kept"
    reason = F.array(F.concat(F.lit("duplicate key ("), key, F.lit(f"): {why}")))
    return _quarantine(losers, source, record, reason, "duplicate")
