"""Enforcing a source contract on raw rows: cast, nullability and CHECK rules, with a reason per failure.

The hot path only needs to know whether a row is valid: ``enforce`` adds one boolean (``_valid``), a plain
conjunction Spark generates code for. The human-readable reasons (an array built with a higher-order function)
are computed only for the rejected rows, in ``quarantine_rows``.

A source with PII columns never lands them in clear (``protect``, applied as the rows are read, before bronze):
each PII column's contract is checked on its clear value, the reasons kept (values redacted) in ``_pii_reasons``,
and the value replaced by its keyed hash; a malformed line, whose fields cannot be trusted to be where they
belong, keeps none of them, and its raw text is stored encrypted (AES-256-GCM, ``pii.encrypt_text``).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeforge.config import ColumnSpec, SourceSpec
from lakeforge.ingest.pii import encrypt_text, hash_columns
from lakeforge.ingest.read import CORRUPT

RAW_PREFIX = "__raw_"
REASONS = "_reasons"
PII_REASONS = "_pii_reasons"
VALID = "_valid"


def _raw(name: str) -> Column:
    return F.col(f"`{RAW_PREFIX}{name}`")


SHOWN_CHARS = 200  # characters of a value a reason quotes
RAW_RECORD_CHARS = 65_536  # characters of a rejected row's raw record kept in quarantine
REPLACEMENT = "\ufffd"  # what a reader puts where bytes were not valid in the declared encoding
DATE_ONLY = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*$"


def clipped(value: Column, limit: int) -> Column:
    """``value`` cut to ``limit`` characters, saying how long it was when it was longer."""
    return F.when(F.length(value) > limit, F.concat(F.substring(value, 1, limit), F.lit("... ["),
                                                    F.length(value).cast("string"), F.lit(" characters in all]"))
                  ).otherwise(value)


def _violations(column: ColumnSpec, source: SourceSpec, raw: Column | None = None,
                typed: Column | None = None) -> list[tuple[Column, Column]]:
    """(condition, reason) for each way a value can break ``column``'s contract (``raw``: the value as read,
    ``typed``: it cast to the contract's type; by default the columns ``enforce`` makes)."""
    name = column.name
    raw = _raw(name) if raw is None else raw
    typed = F.col(f"`{name}`") if typed is None else typed
    shown = (F.lit("<redacted>") if name in source.pii
             else F.concat(F.lit("'"), clipped(raw, SHOWN_CHARS), F.lit("'")))
    target = column.type if column.format is None else f"{column.type} (format {column.format})"
    found = [(raw.contains(REPLACEMENT),
              F.lit(f"column '{name}': bytes that are not valid {source.encoding} (the source's encoding); fix the "
                    "producer or declare the file's encoding"))]
    found.append((raw.isNotNull() & typed.isNull(),
                  F.concat(F.lit(f"column '{name}': cannot cast "), shown, F.lit(f" to {target}"))))
    if column.type == "timestamp" and column.format is None and not column.allow_date_only:
        found.append((raw.rlike(DATE_ONLY),
                      F.concat(F.lit(f"column '{name}': "), shown, F.lit(" is a date without a time; a timestamp needs "
                                                                         "one (or set allow_date_only: true)"))))
    if column.type == "string":
        limit = column.max_length or source.max_string_length
        found.append((F.length(raw) > limit,
                      F.concat(F.lit(f"column '{name}': a value of "), F.length(raw).cast("string"),
                               F.lit(f" characters is longer than its limit of {limit} (max_length)"))))
    if not column.nullable:
        found.append((raw.isNull(), F.lit(f"column '{name}': null in a non-nullable column")))
    if column.check:  # the rule names the column: evaluated where that name holds the typed value
        passes = F.coalesce(F.expr(column.check), F.lit(True))
        found.append((typed.isNotNull() & ~passes,
                      F.concat(F.lit(f"column '{name}': value "), shown, F.lit(f" violates check `{column.check}`"))))
    return found


def _all_violations(frame: DataFrame, source: SourceSpec) -> list[tuple[Column, Column]]:
    """Every (condition, reason) of a row of ``enforce``'s output. A malformed line is rejected for that alone:
    its fields cannot be trusted, whatever they parsed to."""
    found = [v for column in source.columns if column.name not in source.pii for v in _violations(column, source)]
    if PII_REASONS in frame.columns:  # the PII columns' own checks, made on their clear values before bronze
        found.append((F.size(F.col(PII_REASONS)) > 0, F.array_join(F.col(PII_REASONS), "; ")))
    if CORRUPT in frame.columns:
        intact = F.col(CORRUPT).isNull()
        found = [(intact & condition, reason) for condition, reason in found]
        shown = (F.lit("<redacted: the source has PII columns>") if source.pii
                 else clipped(F.col(CORRUPT), SHOWN_CHARS))
        found.insert(0, (~intact, F.concat(F.lit("malformed record: "), shown)))
    return found


def protect(raw: DataFrame, source: SourceSpec, key: bytes | None) -> DataFrame:
    """The rows as read, made safe to land in bronze: PII columns checked on their clear values (the reasons, values
    redacted, in ``_pii_reasons``) and replaced by the keyed hash of their typed value (of the value as read when it
    does not cast); in a malformed line every declared column nulled and the raw text encrypted. A source without
    PII columns is returned as is."""
    if not source.pii:
        return raw
    pii = [c for c in source.columns if c.name in source.pii]
    intact = F.col(CORRUPT).isNull() if CORRUPT in raw.columns else F.lit(True)
    staged = raw.select(*[F.col(f"`{c}`") for c in raw.columns if c not in source.pii],
                        *[typed_value(c).alias(c.name) for c in pii],
                        *[F.col(f"`{c.name}`").alias(f"{RAW_PREFIX}{c.name}") for c in pii])
    checks = [v for column in pii for v in _violations(column, source)]
    reasons = F.filter(F.array(*[F.when(intact & condition, reason) for condition, reason in checks]),
                       lambda r: r.isNotNull())
    clear = {c.name: F.coalesce(F.col(f"`{c.name}`").cast("string"), _raw(c.name)) for c in pii}
    kept = staged.select(*[F.when(intact, clear.get(c, F.col(f"`{c}`"))).alias(c) if c in source.column_names
                           else F.col(f"`{c}`") for c in raw.columns], reasons.alias(PII_REASONS))
    hashed = hash_columns(kept, source.pii, key)
    return encrypt_text(hashed, CORRUPT, key) if CORRUPT in hashed.columns else hashed


def typed_value(column: ColumnSpec) -> Column:
    """The raw value cast to the contract's type; null when it does not cast (a date or timestamp with a
    ``format`` is parsed with that pattern)."""
    if column.format is not None:
        parsed = f"try_to_timestamp(CAST(`{column.name}` AS STRING), '{column.format}')"
        return F.expr(parsed if column.type == "timestamp" else f"CAST({parsed} AS DATE)")
    return F.expr(f"try_cast(`{column.name}` AS {column.type})")


def enforce(batch: DataFrame, source: SourceSpec) -> DataFrame:
    """Typed columns, the untouched lineage columns, ``__raw_*`` copies and ``_valid`` (no rule broken). PII
    columns hold their digests (``protect``): kept as strings, their checks already made."""
    lineage = [c for c in batch.columns if c.startswith("_") and c not in source.column_names]
    typed = batch.select(
        *[F.col(f"`{c.name}`").cast("string").alias(c.name) if c.name in source.pii else typed_value(c).alias(c.name)
          for c in source.columns],
        *[F.col(f"`{c.name}`").alias(f"{RAW_PREFIX}{c.name}") for c in source.columns],
        *lineage,
    )
    broken = [condition for condition, _ in _all_violations(typed, source)]
    invalid = broken[0]
    for condition in broken[1:]:
        invalid = invalid | condition
    return typed.withColumn(VALID, ~F.coalesce(invalid, F.lit(False)))


def valid_rows(enforced: DataFrame, source: SourceSpec, all_valid: bool = False) -> DataFrame:
    """The rows that keep the contract, as silver holds them (typed columns and lineage).

    ``all_valid``: the caller has counted no invalid row among exactly these rows (a batch's bronze rows do not
    change once appended), so the contract's rules are not evaluated again: only the casts run.
    """
    lineage = [c for c in enforced.columns
               if c.startswith("_") and not c.startswith(RAW_PREFIX) and c not in (VALID, REASONS, CORRUPT)]
    rows = enforced if all_valid else enforced.where(F.col(VALID))
    return rows.select(*source.column_names, *[c for c in lineage if c != PII_REASONS])


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


def quarantine_rows(enforced: DataFrame, source: SourceSpec) -> DataFrame:
    """Rows breaking the contract: the raw record as JSON (PII as hashed in bronze), every reason, the batch's
    lineage."""
    rejected = enforced.where(~F.col(VALID))
    reasons = F.filter(F.array(*[F.when(condition, reason) for condition, reason in _all_violations(rejected, source)]),
                       lambda r: r.isNotNull())
    rejected = rejected.withColumn(REASONS, reasons)
    record = clipped(F.to_json(F.struct(*[_raw(c).alias(c) for c in source.column_names])), RAW_RECORD_CHARS)
    return _quarantine(rejected, source, record, F.col(REASONS), "contract")


def duplicate_rows(losers: DataFrame, source: SourceSpec) -> DataFrame:
    """Rows that lost to a later row of the same key within the batch, with that key (PII as hashed in bronze) as
    reason."""

    def shown(c: str) -> Column:
        return F.col(f"`{c}`").cast("string")

    record = F.to_json(F.struct(*[shown(c).alias(c) for c in source.column_names]))
    key = F.concat_ws(", ", *[F.concat(F.lit(f"{k}="), F.coalesce(shown(k), F.lit("null"))) for k in source.primary_key])
    why = "a later row of the same key in this batch won" if source.event_time else "another row of the same key in this batch was kept"
    reason = F.array(F.concat(F.lit("duplicate key ("), key, F.lit(f"): {why}")))
    return _quarantine(losers, source, record, reason, "duplicate")
