"""Per-batch data-quality metrics and expectations, written to the ``dq_metrics`` Delta table."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import SourceSpec
from lakeforge.ingest.enforce import VALID
from lakeforge.tables import Table, retry_on_conflict

DQ_SCHEMA = ("source string, batch_id string, metric string, column string, value double, threshold double, "
             "passed boolean")


@dataclass(frozen=True)
class BatchStats:
    rows_read: int
    quarantined: int
    null_rates: dict[str, float]


def stats_aggregates(source: SourceSpec) -> list[Column]:
    """Aggregates giving rows read, rows failing the contract and the null rate of every typed column, meant
    for ``DataFrame.observe`` on the enforced rows (computed in a pass that runs anyway)."""
    aggregates = [F.count(F.lit(1)).alias("__rows"), F.sum((~F.col(VALID)).cast("long")).alias("__bad")]
    aggregates += [F.avg(F.col(f"`{c}`").isNull().cast("double")).alias(c) for c in source.column_names]
    return aggregates


def stats_from(row: dict, source: SourceSpec) -> BatchStats:
    """``BatchStats`` from the values of ``stats_aggregates``."""
    return BatchStats(int(row["__rows"]), int(row["__bad"] or 0), {c: float(row[c] or 0.0) for c in source.column_names})


def batch_stats(enforced: DataFrame, source: SourceSpec) -> BatchStats:
    """``stats_aggregates`` as a job of their own."""
    return stats_from(enforced.agg(*stats_aggregates(source)).first().asDict(), source)


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
