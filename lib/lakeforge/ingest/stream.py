"""Streaming ingestion: Structured Streaming watches a landing folder (a ``stream_files`` source) or reads Kafka
topics (a ``kafka`` source, ``ingest.kafka``) and sends every micro-batch through the same bronze -> enforcement ->
quarantine -> MERGE path as batch files.

Exactly once: a micro-batch's id is derived from the checkpoint location and the epoch id, which Spark keeps
across restarts, so a replayed epoch (after a crash or a kill) finds its bronze append, quarantine append and
silver MERGE already committed and skips them.
"""

from __future__ import annotations

import hashlib
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import StreamingQuery

from lakeforge.config import Settings, SourceSpec
from lakeforge.errors import InputError
from lakeforge.ingest.batch import IngestResult, process_batch
from lakeforge.ingest.kafka import LINEAGE as KAFKA_LINEAGE
from lakeforge.ingest.kafka import read_kafka_stream
from lakeforge.ingest.read import CORRUPT, RawBatch, reader_options
from lakeforge.paths import stream_checkpoint_path

log = logging.getLogger(__name__)


def _stream_schema(source: SourceSpec) -> T.StructType:
    fields = [T.StructField(c, T.StringType()) for c in source.column_names]
    return T.StructType(fields + [T.StructField(CORRUPT, T.StringType())])


def start_stream(
    spark: SparkSession,
    settings: Settings,
    source_name: str,
    *,
    available_now: bool = False,
    processing_time: str = "30 seconds",
    max_files_per_trigger: int | None = None,
    max_offsets_per_trigger: int | None = None,
    on_batch=None,
) -> StreamingQuery:
    """Start the stream of ``source_name``; the caller waits on (or stops) the returned query.

    ``available_now`` processes what has landed and stops; otherwise a micro-batch runs every
    ``processing_time``. ``on_batch(result)`` is called with each micro-batch's ``IngestResult``.
    ``max_files_per_trigger`` applies to a stream_files source, ``max_offsets_per_trigger`` (messages per
    micro-batch, over the source's own setting) to a kafka source.
    """
    source = settings.sources.get(source_name)
    if source is None or not source.streaming:
        declared = sorted(n for n, s in settings.sources.items() if s.streaming)
        raise InputError(f"'{source_name}' is not a stream source (kind stream_files or kafka); stream sources: "
                         f"{declared or 'none'}")
    checkpoint = stream_checkpoint_path(settings, source.name)
    stream_key = hashlib.sha256(checkpoint.encode()).hexdigest()[:8]
    if source.kind == "kafka":
        stream = read_kafka_stream(spark, settings, source, max_offsets_per_trigger)
        where, lineage = ", ".join(source.kafka.topics) or source.kafka.topic_pattern, KAFKA_LINEAGE
    else:
        stream = _file_stream(spark, settings, source, max_files_per_trigger)
        where, lineage = settings.storage.landing_path(source.path), ()

    def each_batch(frame: DataFrame, epoch_id: int) -> None:
        batch_id = f"{source.name}-stream-{stream_key}-{epoch_id}"
        rows = frame.select(*source.column_names, CORRUPT, F.current_timestamp().alias("_ingested_at"),
                            "_source_file", F.lit(batch_id).alias("_batch_id"), *lineage)
        result: IngestResult = process_batch(frame.sparkSession, settings, RawBatch(rows, batch_id, source))
        if on_batch is not None:
            on_batch(result)

    writer = (stream.writeStream.foreachBatch(each_batch).option("checkpointLocation", checkpoint)
              .queryName(f"lakeforge-{source.name}"))
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=processing_time)
    log.info("streaming %s from %s (checkpoint %s)", source.name, where, checkpoint)
    return writer.start()


def _file_stream(spark: SparkSession, settings: Settings, source: SourceSpec,
                 max_files_per_trigger: int | None) -> DataFrame:
    path = settings.storage.landing_path(source.path)
    reader = (spark.readStream.format(source.file_format).options(**reader_options(source, source.file_format))
              .schema(_stream_schema(source)).option("columnNameOfCorruptRecord", CORRUPT))
    if source.file_format == "csv":
        reader = reader.option("mode", "PERMISSIVE").option("enforceSchema", "false")  # headers must match the contract
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
    return reader.load(path).select(*source.column_names, CORRUPT, F.col("_metadata.file_path").alias("_source_file"))
