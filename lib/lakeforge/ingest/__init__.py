"""Ingestion: a declared source -> bronze (as read, idempotent append) -> silver (contract, quarantine, dedup,
data-quality gate, PII hashing, MERGE).

    result = ingest_source(spark, settings, "flights")            # the source's landing path
    result = ingest_source(spark, settings, "flights", "/x.csv")  # one given file or folder
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from lakeforge.config import Settings
from lakeforge.errors import DataQualityError, InputError
from lakeforge.ingest.batch import IngestResult, nothing_new, process_batch
from lakeforge.ingest.pii import PiiKeyMissingError
from lakeforge.ingest.read import BatchRejectedError, read_files_batch
from lakeforge.paths import bronze_table, dq_metrics_table, quarantine_table, silver_table

__all__ = ["BatchRejectedError", "DataQualityError", "IngestResult", "PiiKeyMissingError", "bronze_table",
           "dq_metrics_table", "ingest_source", "quarantine_table", "silver_table"]


def ingest_source(spark: SparkSession, settings: Settings, source_name: str, input_path: str | None = None) -> IngestResult:
    """Ingest one batch of ``source_name`` end to end; re-running the same batch changes nothing."""
    if source_name not in settings.sources:
        raise InputError(f"unknown source '{source_name}'; declared sources: {', '.join(sorted(settings.sources))} "
                       f"(add conf/sources/{source_name}.yaml to declare it)")
    source = settings.sources[source_name]
    if source.kind == "jdbc":
        from lakeforge.ingest.jdbc import read_jdbc_batch

        if input_path:
            raise InputError(f"source '{source_name}' is read over JDBC; --input does not apply")
        raw = read_jdbc_batch(spark, settings, source, silver_table(settings, source.name))
        if raw is None:
            return nothing_new(spark, settings, source)
    elif source.kind == "kafka":
        raise InputError(f"source '{source_name}' reads the Kafka topic(s) of conf/sources/{source_name}.yaml as a "
                         f"stream; run `stream --source {source_name}` (add --available-now to read what is there and "
                         "stop)")
    elif source.kind == "stream_files" and input_path is None:
        raise InputError(f"source '{source_name}' is a stream; run jobs/stream.py for it, or give --input to "
                         "ingest one folder as a batch")
    else:
        raw = read_files_batch(spark, source, input_path or settings.storage.landing_path(source.path))
    return process_batch(spark, settings, raw)
