"""One batch, whatever its origin (files, JDBC, a streaming micro-batch): bronze -> enforcement -> quarantine
-> dedup -> data-quality gate -> PII hashing -> MERGE into silver. Every write is idempotent per batch."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.config import Settings, SourceSpec
from lakeforge.ingest.enforce import duplicate_rows, enforce, quarantine_rows, valid_rows
from lakeforge.ingest.merge import RANK, merge_into_silver, rank_by_key
from lakeforge.ingest.pii import PiiKeyMissingError, hmac_column
from lakeforge.ingest.quality import DataQualityError, batch_stats, evaluate, failures, write_metrics
from lakeforge.ingest.read import CORRUPT, RawBatch
from lakeforge.tables import delta_version, last_commit, retry_on_conflict

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


def bronze_path(settings: Settings, source: str) -> str:
    return settings.storage.table_path("bronze", source)


def silver_path(settings: Settings, source: str) -> str:
    return settings.storage.table_path("silver", source)


def quarantine_path(settings: Settings, source: str) -> str:
    return settings.storage.table_path("quarantine", source)


def dq_metrics_path(settings: Settings) -> str:
    return settings.storage.table_path("quality", "dq_metrics")


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


def _append_once(spark: SparkSession, frame, path: str, app_id: str, merge_schema: bool = False) -> bool:
    """Idempotent Delta append (at most once per ``app_id``); True when this call committed it.

    A table this creates keeps file statistics for ``_batch_id`` only: its readers select whole batches,
    and statistics of every raw string column would double the cost of writing it.
    """
    def append() -> bool:
        before = delta_version(spark, path)
        spark.conf.set(STATS_DEFAULT, "_batch_id")
        try:
            (frame.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", 0)
             .option("mergeSchema", str(merge_schema).lower()).save(path))
        finally:
            spark.conf.unset(STATS_DEFAULT)
        return delta_version(spark, path) != before

    return retry_on_conflict(append, what=f"appending to {path}")


def process_batch(spark: SparkSession, settings: Settings, raw: RawBatch) -> IngestResult:
    """Land ``raw`` in bronze, then enforce, quarantine, deduplicate, gate and MERGE it into silver."""
    source, batch_id = raw.source, raw.batch_id
    key = pii_key_for(settings, source)
    # Bronze keeps whatever arrived (its schema may grow); the contract is enforced on the way to silver.
    appended = _append_once(spark, raw.frame, bronze_path(settings, source.name), f"lakeforge-bronze:{batch_id}",
                            merge_schema=True)
    bronze = spark.read.format("delta").load(bronze_path(settings, source.name)).where(F.col("_batch_id") == batch_id)
    enforced = enforce(bronze.select(*source.column_names, CORRUPT, "_ingested_at", "_source_file", "_batch_id"),
                       source).persist()
    ranked = rank_by_key(valid_rows(enforced, source), source).persist()
    try:
        stats = batch_stats(enforced, source)
        duplicates = ranked.where(F.col(RANK) > 1).count()
        rejected = quarantine_rows(enforced, source, key).unionByName(
            duplicate_rows(ranked.where(F.col(RANK) > 1), source, key))
        if stats.quarantined or duplicates:
            _append_once(spark, rejected, quarantine_path(settings, source.name), f"lakeforge-quarantine:{batch_id}")
        measured = evaluate(source, stats, duplicates)
        write_metrics(spark, dq_metrics_path(settings), source.name, batch_id, measured)
        failed = failures(measured)
        if failed:
            raise DataQualityError(
                f"source '{source.name}' batch {batch_id} failed expectation(s): {'; '.join(failed)}. Silver was not "
                f"changed; the batch is in {bronze_path(settings, source.name)} (_batch_id = '{batch_id}') and its "
                f"metrics in {dq_metrics_path(settings)}")
        kept = ranked.where(F.col(RANK) == 1).drop(RANK, "_source_file")
        for column in source.pii:
            kept = kept.withColumn(column, hmac_column(F.col(f"`{column}`"), key))
        merged = merge_into_silver(spark, silver_path(settings, source.name), source, kept, batch_id, raw.watermark)
    finally:
        ranked.unpersist()
        enforced.unpersist()

    silver = silver_path(settings, source.name)
    commit = last_commit(spark, silver)
    metrics = commit["metrics"] if merged else {}
    result = IngestResult(
        source=source.name, batch_id=batch_id, rows_read=stats.rows_read, bronze_appended=appended,
        quarantined=stats.quarantined, duplicates_dropped=duplicates, silver_merged=merged,
        silver_inserted=metrics.get("numTargetRowsInserted", 0), silver_updated=metrics.get("numTargetRowsUpdated", 0),
        silver_version=commit["version"], silver_rows=spark.read.format("delta").load(silver).count(),
        added_columns=raw.added_columns,
    )
    log.info("ingested %s", result.as_dict())
    return result


def nothing_new(spark: SparkSession, settings: Settings, source: SourceSpec) -> IngestResult:
    """The result of a run that found no new rows: nothing was written."""
    silver = silver_path(settings, source.name)
    version = delta_version(spark, silver)
    rows = spark.read.format("delta").load(silver).count() if version is not None else 0
    log.info("source '%s': nothing new since the last batch", source.name)
    return IngestResult(source.name, "", 0, False, 0, 0, False, 0, 0, -1 if version is None else version, rows)
