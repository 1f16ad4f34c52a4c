"""Per-batch data-quality metrics and expectations, written to the ``dq_metrics`` Delta table."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import SourceSpec
from lakeforge.ingest.enforce import VALID
from lakeforge.spark import session_conf
from lakeforge.tables import Table, retry_on_conflict

log = logging.getLogger(__name__)

DQ_SCHEMA = ("source string, batch_id string, metric string, column string, value double, threshold double, "
             "passed boolean")


@dataclass(frozen=True)
class BatchStats:
    rows_read: int
    quarantined: int
    null_rates: dict[str, float]


ROWS, BAD = "__rows", "__bad"


def count_aggregates() -> list[Column]:
    """Aggregates giving rows read and rows failing the contract, meant for ``DataFrame.observe`` on the enforced
    rows (computed in a pass that runs anyway)."""
    return [F.count(F.lit(1)).alias(ROWS), F.sum((~F.col(VALID)).cast("long")).alias(BAD)]


def batch_stats(enforced: DataFrame, source: SourceSpec) -> BatchStats:
    """Rows read, rows failing the contract and the null rate of every typed column, in a job of their own."""
    rates = [F.avg(F.col(f"`{c}`").isNull().cast("double")).alias(c) for c in source.column_names]
    row = enforced.agg(*count_aggregates(), *rates).first().asDict()
    return BatchStats(int(row[ROWS]), int(row[BAD] or 0), {c: float(row[c] or 0.0) for c in source.column_names})


AGGREGATE_PUSHDOWN = "spark.sql.parquet.aggregatePushdown"
V1_SOURCES = "spark.sql.sources.useV1SourceList"


def footer_null_rates(rows_read: DataFrame, columns: Sequence[str], rows: int) -> dict[str, float] | None:
    """The null rate of each of ``columns`` among the ``rows`` rows of ``rows_read`` (a filtered read of a Delta
    table), from the row and null counts Parquet keeps in the footer of each file: no value is read.

    The files are those Delta's data skipping selects for the filter. Their counts are the rows' own only when the
    files hold ``rows`` rows in all, so exactly these rows: no row of another batch, none hidden by a deletion
    vector. Otherwise, and where the footers cannot answer (a column under another physical name, as with Delta
    column mapping; a file without null counts), ``None``: the caller counts the nulls itself. Spark reads
    footers only through its DataSource V2 Parquet reader, with aggregate push-down on, both for this read only.
    """
    files = rows_read.inputFiles() if rows else []
    if not files:
        return None
    spark = rows_read.sparkSession
    try:
        with session_conf(spark, footer_read_conf(spark)):
            counts = footer_counts(spark, files, columns).first()
    except Exception as exc:  # noqa: BLE001 - the footers cannot answer; the caller counts the nulls itself
        log.info("null rates counted by a job over the rows: the Parquet footers of %d file(s) cannot give them (%s)",
                 len(files), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None
    if counts[ROWS] != rows:
        return None
    log.debug("null rates of %d column(s) from the Parquet footers of %d file(s)", len(columns), len(files))
    return {c: (rows - counts[c]) / rows for c in columns}


def footer_read_conf(spark: SparkSession) -> dict[str, str]:
    """The settings under which ``footer_counts`` reads footers only: aggregate push-down on, and Parquet read by
    the DataSource V2 reader (the V1 reader, Spark's default, cannot push an aggregate down)."""
    v1 = ",".join(s for s in spark.conf.get(V1_SOURCES).split(",") if s.strip().lower() != "parquet")
    return {AGGREGATE_PUSHDOWN: "true", V1_SOURCES: v1}


def footer_counts(spark: SparkSession, files: Sequence[str], columns: Sequence[str]) -> DataFrame:
    """One row: the files' rows (``ROWS``) and each column's non-null values, answered from the footers when run
    under ``footer_read_conf``."""
    return spark.read.parquet(*files).agg(F.count(F.lit(1)).alias(ROWS),
                                          *[F.count(F.col(f"`{c}`")).alias(c) for c in columns])


def evaluate(source: SourceSpec, stats: BatchStats, duplicates: int) -> list[tuple]:
    """Rows of ``dq_metrics`` (without batch columns): plain metrics first, then each expectation's verdict."""
    rows_read = max(stats.rows_read, 1)
    measured = [
        ("rows_read", None, float(stats.rows_read), None, None),
        ("rows_quarantined", None, float(stats.quarantined), None, None),
        ("rows_duplicate", None, float(duplicates), None, None),
        ("rows_valid_unique", None, float(stats.rows_read - stats.quarantined - duplicates), None, None),
    ]
    measured += [("null_rate", c, rate, None, None) for c, rate in sorted(stats.null_rates.items())]
    for exp in source.expectations:
        if exp.kind == "max_null_rate":
            value, passed = stats.null_rates[exp.column], stats.null_rates[exp.column] <= exp.threshold
        elif exp.kind == "max_quarantine_rate":
            value = stats.quarantined / rows_read
            passed = value <= exp.threshold
        elif exp.kind == "max_duplicate_rate":
            value = duplicates / rows_read
            passed = value <= exp.threshold
        else:  # min_rows
            value, passed = float(stats.rows_read), stats.rows_read >= exp.threshold
        measured.append((f"expectation:{exp.name}", exp.column, float(value), float(exp.threshold), bool(passed)))
    return measured


def failures(measured: list[tuple]) -> list[str]:
    return [f"{m[0].removeprefix('expectation:')}: {m[2]:.4g} (threshold {m[3]:g})" for m in measured if m[4] is False]


def write_metrics(spark: SparkSession, path: str, source: str, batch_id: str, measured: list[tuple]) -> None:
    """Append the batch's metrics once (Delta idempotent append keyed by the batch)."""
    frame = spark.createDataFrame([(source, batch_id, *m) for m in measured], DQ_SCHEMA)
    writer = (frame.withColumn("measured_at", F.current_timestamp())
              .write.mode("append")
              .option("txnAppId", f"lakeforge-dq:{batch_id}").option("txnVersion", 0))
    retry_on_conflict(lambda: Table.of(path).save(writer), what=f"appending to {path}")
