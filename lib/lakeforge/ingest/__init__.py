"""Ingestion: raw files -> bronze (as read, idempotent append) -> silver (contract, quarantine, dedup, MERGE).

    result = ingest_source(spark, settings, "flights")            # the source's landing path
    result = ingest_source(spark, settings, "flights", "/x.csv")  # one given file or folder
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.config import Settings
from lakeforge.ingest.enforce import enforce, quarantine_rows, valid_rows
from lakeforge.ingest.merge import latest_per_key, merge_into_silver
from lakeforge.ingest.read import BatchRejectedError, read_raw_batch
from lakeforge.tables import delta_version, last_commit

__all__ = ["BatchRejectedError", "IngestResult", "ingest_source", "bronze_path", "silver_path", "quarantine_path"]

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

    def as_dict(self) -> dict:
        return asdict(self)


def bronze_path(settings: Settings, source: str) -> str:
    return settings.storage.table_path("bronze", source)


def silver_path(settings: Settings, source: str) -> str:
    return settings.storage.table_path("silver", source)


def quarantine_path(settings: Settings, source: str) -> str:
    return settings.storage.table_path("quarantine", source)


def ingest_source(spark: SparkSession, settings: Settings, source_name: str, input_path: str | None = None) -> IngestResult:
    """Ingest one batch of ``source_name`` end to end; re-running the same batch changes nothing."""
    if source_name not in settings.sources:
        raise KeyError(f"unknown source '{source_name}'; declared sources: {', '.join(sorted(settings.sources))} "
                       f"(add conf/sources/{source_name}.yaml to declare it)")
    source = settings.sources[source_name]
    path = input_path or settings.storage.landing_path(source.path)
    raw, batch_id = read_raw_batch(spark, source, path)

    bronze = bronze_path(settings, source.name)
    before = delta_version(spark, bronze)
    (raw.write.format("delta").mode("append")
     .option("txnAppId", f"lakeforge-bronze:{batch_id}").option("txnVersion", 0)
     .save(bronze))
    appended = delta_version(spark, bronze) != before

    batch = spark.read.format("delta").load(bronze).where(F.col("_batch_id") == batch_id)
    enforced = enforce(batch, source).persist()
    try:
        rows_read = enforced.count()
        rejected = quarantine_rows(enforced, source)
        quarantined = rejected.count()
        if quarantined:
            (rejected.write.format("delta").mode("append")
             .option("txnAppId", f"lakeforge-quarantine:{batch_id}").option("txnVersion", 0)
             .save(quarantine_path(settings, source.name)))
        valid = valid_rows(enforced, source).drop("_source_file")
        deduped = latest_per_key(valid, source)
        duplicates = (rows_read - quarantined) - deduped.count()
        merged = merge_into_silver(spark, silver_path(settings, source.name), source, deduped, batch_id)
    finally:
        enforced.unpersist()

    silver = silver_path(settings, source.name)
    commit = last_commit(spark, silver)
    metrics = commit["metrics"] if merged else {}
    result = IngestResult(
        source=source.name, batch_id=batch_id, rows_read=rows_read, bronze_appended=appended,
        quarantined=quarantined, duplicates_dropped=duplicates, silver_merged=merged,
        silver_inserted=metrics.get("numTargetRowsInserted", 0),
        silver_updated=metrics.get("numTargetRowsUpdated", 0),
        silver_version=commit["version"],
        silver_rows=spark.read.format("delta").load(silver).count(),
    )
    log.info("ingested %s", result.as_dict())
    return result
