"""One batch, whatever its origin (files, JDBC, a streaming micro-batch): bronze -> enforcement -> quarantine
-> dedup -> data-quality gate -> PII hashing -> MERGE into silver. Every write is idempotent per batch."""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from pyspark.sql import Observation, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import Settings, SourceSpec
from lakeforge.errors import DataQualityError
from lakeforge.ingest.enforce import PII_REASONS, duplicate_rows, enforce, protect, quarantine_rows, valid_rows
from lakeforge.ingest.merge import COUNT, duplicate_keys, ensure_silver_table, merge_into_silver, split_duplicates
from lakeforge.ingest.pii import PiiKeyMissingError
from lakeforge.ingest.quality import (BAD, ROWS, BatchStats, batch_stats, count_aggregates, evaluate, failures,
                                      footer_null_rates, write_metrics)
from lakeforge.ingest.read import CORRUPT, RawBatch
from lakeforge.paths import bronze_table, dq_metrics_table, quarantine_table, silver_table
from lakeforge.spark import session_conf
from lakeforge.tables import Table, delta_version, last_commit, retry_on_conflict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    source: str
    batch_id: str
    rows_read: int
    bronze_appended: bool
    quarantined: int
    duplicates_dropped: int
    silver_merged: bool
    silver_inserted: int
    silver_updated: int
    silver_version: int
    silver_rows: int
    added_columns: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)


def pii_key_for(settings: Settings, source: SourceSpec) -> bytes | None:
    if not source.pii:
        return None
    if settings.pii_key is None:
        raise PiiKeyMissingError(
            f"source '{source.name}' declares PII column(s) {list(source.pii)}, and no hashing key is set: export "
            f"{settings.pii.key_env} (for example: export {settings.pii.key_env}=$(openssl rand -hex 32)); "
            "the job will not write PII in clear")
    return settings.pii_key.get_secret_value().encode("utf-8")


STATS_DEFAULT = "spark.databricks.delta.properties.defaults.dataSkippingStatsColumns"


def _append_once(spark: SparkSession, frame, path: Table, app_id: str, merge_schema: bool = False) -> bool:
    """Idempotent Delta append (at most once per ``app_id``); True when this call committed it.

    A table this creates keeps file statistics for ``_batch_id`` only: its readers select whole batches,
    and statistics of every raw string column would double the cost of writing it.
    """
    def append() -> bool:
        before = delta_version(spark, path)
        with session_conf(spark, {STATS_DEFAULT: "_batch_id"}):
            path.save(frame.write.mode("append").option("txnAppId", app_id).option("txnVersion", 0)
                      .option("mergeSchema", str(merge_schema).lower()))
        return delta_version(spark, path) != before

    return retry_on_conflict(append, what=f"appending to {path}")


#: Duplicate keys up to this many are collected and only their rows ranked; above it every row is ranked.
MAX_COLLECTED_DUPLICATE_KEYS = 10_000
CONSTRAINT_PROPAGATION = "spark.sql.constraintPropagation.enabled"
HUGE_METHOD_LIMIT = "spark.sql.codegen.hugeMethodLimit"
#: HotSpot never compiles a method of more than 8,000 bytes of bytecode (-XX:+DontCompileHugeMethods, the default).
JIT_METHOD_LIMIT = "8000"


class _Phases:
    """Wall-clock seconds per phase of a batch, for the log (and the benchmark)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._last, 3)
        self._last = now


def process_batch(spark: SparkSession, settings: Settings, raw: RawBatch) -> IngestResult:
    """Land ``raw`` in bronze, then enforce, quarantine, deduplicate, gate and MERGE it into silver.

    Spark jobs over the batch's rows: the bronze append; one pass over the batch read back from bronze that
    counts its rows and rejected rows (``observe``) while collecting the keys held by several valid rows (a
    shuffle of the key columns only); each column's null rate from the Parquet footers of the batch's bronze
    files when no row was rejected (a small job that reads no value), from a job over the rows otherwise; the
    quarantine append when a row was rejected; the silver MERGE, which
    evaluates the contract's rules again only when that pass counted a rejected row (otherwise it only casts).
    Nothing is cached: each pass reads the batch's bronze files again, which costs less than caching them.
    """
    key = pii_key_for(settings, raw.source)
    with _batch_conf(spark):
        return _process_batch(spark, settings, raw, key)


@contextmanager
def _batch_conf(spark: SparkSession):
    """Two SQL settings for the batch's wide plans, restored afterwards:

    * constraint propagation off: the plans carry one filter over ~2 x (columns) aliased expressions (the casts and
      the raw copies); Spark substitutes every alias into it, doubling its constraint set per alias, which at 19
      columns exhausts the driver's memory as soon as a join (the MERGE's) asks for the constraints. The inferred
      filters would buy nothing here;
    * whole-stage code generation only for a stage whose generated method HotSpot will compile: Spark's default
      limit (65,535 bytes) lets through the enforcement stage's one method of tens of kilobytes, which then runs
      interpreted for the whole batch. With the limit at 8,000 bytes Spark runs that stage without whole-stage code
      generation, its expressions still generated, in methods small enough to compile: the silver phase of
      1,347,104 flights took 10.3 s instead of 15.7 s, evaluating the contract alone 4.7 s instead of 8.0 s
      (bench/README.md).
    """
    with session_conf(spark, {CONSTRAINT_PROPAGATION: "false", HUGE_METHOD_LIMIT: JIT_METHOD_LIMIT}):
        yield


def _batch_stats(observation: Observation, bronze, enforced, source: SourceSpec) -> BatchStats:
    """The batch's statistics: its rows and rejected rows observed during the duplicate-key pass and, when no row
    was rejected, each column's null rate from the Parquet footers of its bronze files (``footer_null_rates``):
    a value that does not cast is a rejection, so then a typed value is null exactly where its raw value is.
    Counting the nulls in the pass cost as much as the contract's checks (bench/README.md).

    Otherwise a job of its own computes them all over the enforced rows; so too when adaptive execution dropped
    the observing node from the final plan, as it does when no row reaches the shuffle (a batch without a valid
    row), and the metrics with it."""
    try:
        observed = observation.get
    except Exception:  # noqa: BLE001 - pyspark fails converting an empty metrics row
        observed = {}
    if ROWS in observed and not observed[BAD]:
        rows = int(observed[ROWS])
        rates = footer_null_rates(bronze, source.column_names, rows)
        if rates is not None:
            return BatchStats(rows, 0, rates)
    return batch_stats(enforced, source)


def _process_batch(spark: SparkSession, settings: Settings, raw: RawBatch, key: bytes | None) -> IngestResult:
    source, batch_id = raw.source, raw.batch_id
    phases = _Phases()
    # Bronze keeps whatever arrived (its schema may grow); the contract is enforced on the way to silver.
    # PII is hashed (and malformed lines of a PII source encrypted) before anything lands (enforce.protect).
    appended = _append_once(spark, protect(raw.frame, source, key), bronze_table(settings, source.name),
                            f"lakeforge-bronze:{batch_id}", merge_schema=True)
    phases.done("bronze_append")
    bronze = bronze_table(settings, source.name).read(spark).where(F.col("_batch_id") == batch_id)
    checked = [PII_REASONS] if source.pii else []
    enforced = enforce(bronze.select(*source.column_names, CORRUPT, "_ingested_at", "_source_file", "_batch_id",
                                     *checked), source)

    observation = Observation(f"lakeforge-stats-{uuid.uuid4().hex}")
    observed = enforced.observe(observation, *count_aggregates())
    groups = duplicate_keys(valid_rows(observed, source), source).limit(MAX_COLLECTED_DUPLICATE_KEYS + 1).collect()
    stats = _batch_stats(observation, bronze, enforced, source)
    if len(groups) > MAX_COLLECTED_DUPLICATE_KEYS:
        duplicates = int(duplicate_keys(valid_rows(enforced, source), source)
                         .agg(F.sum(F.col(COUNT) - 1)).first()[0] or 0)
        groups = None
    else:
        duplicates = sum(g[COUNT] - 1 for g in groups)
    phases.done("enforce_stats_duplicates")

    # No row was rejected: silver's rows are the batch's rows cast, and the contract is not evaluated a second time
    # (silver phase at 3M rows 18.9 s -> 11.9 s, bench/README.md; Delta still checks silver's NOT NULL and CHECK
    # constraints on write).
    kept, losers = split_duplicates(valid_rows(enforced, source, all_valid=stats.quarantined == 0), source, groups)
    if stats.quarantined or duplicates:
        rejected = quarantine_rows(enforced, source)
        if losers is not None:
            rejected = rejected.unionByName(duplicate_rows(losers, source))
        _append_once(spark, rejected, quarantine_table(settings, source.name), f"lakeforge-quarantine:{batch_id}")
    phases.done("quarantine")
    measured = evaluate(source, stats, duplicates)
    write_metrics(spark, dq_metrics_table(settings), source.name, batch_id, measured)
    phases.done("dq_metrics")
    failed = failures(measured)
    if failed:
        raise DataQualityError(
            f"source '{source.name}' batch {batch_id} failed expectation(s): {'; '.join(failed)}. Silver was not "
            f"changed; the batch is in {bronze_table(settings, source.name)} (_batch_id = '{batch_id}') and its "
            f"metrics in {dq_metrics_table(settings)}")
    silver = silver_table(settings, source.name)
    if stats.rows_read == 0:  # a header-only file: no silver commit, so nothing downstream sees a new version
        log.info("source '%s' batch %s has no rows: silver is not touched", source.name, batch_id)
        merged = False
        ensure_silver_table(spark, silver, source)
    else:
        merged = merge_into_silver(spark, silver, source, kept.drop("_source_file"), batch_id, raw.watermark)
    phases.done("silver_merge")

    commit = last_commit(spark, silver)
    metrics = commit["metrics"] if merged else {}
    result = IngestResult(
        source=source.name, batch_id=batch_id, rows_read=stats.rows_read, bronze_appended=appended,
        quarantined=stats.quarantined, duplicates_dropped=duplicates, silver_merged=merged,
        silver_inserted=metrics.get("numTargetRowsInserted", 0), silver_updated=metrics.get("numTargetRowsUpdated", 0),
        silver_version=commit["version"], silver_rows=silver.read(spark).count(),
        added_columns=raw.added_columns,
    )
    phases.done("result")
    log.info("ingested %s in %s", result.as_dict(), phases.seconds)
    return result


def nothing_new(spark: SparkSession, settings: Settings, source: SourceSpec) -> IngestResult:
    """The result of a run that found no new rows: nothing was written."""
    silver = silver_table(settings, source.name)
    version = delta_version(spark, silver)
    rows = silver.read(spark).count() if version is not None else 0
    log.info("source '%s': nothing new since the last batch", source.name)
    return IngestResult(source.name, "", 0, False, 0, 0, False, 0, 0, -1 if version is None else version, rows)
