"""Reading one raw batch of a source, as read: every declared column as a string, plus lineage columns."""

from __future__ import annotations

import hashlib

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.utils import AnalysisException

from lakeforge.config import SourceSpec

LINEAGE_COLUMNS = ("_ingested_at", "_source_file", "_batch_id")


class BatchRejectedError(ValueError):
    """A file that cannot be a batch at all; nothing was written."""


def _file_fingerprints(spark: SparkSession, files: list[str]) -> list[str]:
    """``path|length|mtime`` for each input file, through Hadoop's FileSystem (works for s3a://, dbfs:/ ...)."""
    jvm = spark.sparkContext._jvm
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    prints = []
    for name in sorted(files):
        path = jvm.org.apache.hadoop.fs.Path(name)
        status = path.getFileSystem(hadoop_conf).getFileStatus(path)
        prints.append(f"{name}|{status.getLen()}|{status.getModificationTime()}")
    return prints


def batch_id_for(source: SourceSpec, fingerprints: list[str]) -> str:
    """Deterministic batch id: the same files (path, size, time) give the same id on every re-run."""
    digest = hashlib.sha256("\n".join([source.name, *fingerprints]).encode()).hexdigest()
    return f"{source.name}-{digest[:16]}"


def read_raw_batch(spark: SparkSession, source: SourceSpec, path: str) -> tuple[DataFrame, str]:
    """Read ``path`` as the source's raw batch; returns the DataFrame (strings + lineage) and its batch id.

    Raises ``BatchRejectedError`` naming the file and the fix when the input is missing, unreadable or
    lacks declared columns, or has columns the contract does not declare.
    """
    reader = spark.read.format(source.format).options(**source.options)
    if source.format == "csv":
        reader = reader.option("inferSchema", "false").option("mode", "PERMISSIVE")
    try:
        raw = reader.load(path)
        files = raw.inputFiles()
    except AnalysisException as exc:
        raise BatchRejectedError(f"source '{source.name}': cannot read {path}: {exc.getMessage().splitlines()[0]}") from None
    if not files:
        raise BatchRejectedError(f"source '{source.name}': no input files under {path}")

    declared = list(source.column_names)
    found = list(raw.columns)
    missing = [c for c in declared if c not in found]
    extra = [c for c in found if c not in declared]
    where = files[0] if len(files) == 1 else f"{path} ({len(files)} files)"
    if missing:
        hint = " (is the delimiter or header option right?)" if len(found) == 1 else ""
        raise BatchRejectedError(
            f"source '{source.name}': {where} lacks declared column(s) {missing}; found {found}{hint}. "
            f"Fix the file or the contract in conf/sources/{source.name}.yaml")
    if extra:
        raise BatchRejectedError(
            f"source '{source.name}': {where} has column(s) {extra} not in the contract; add them to "
            f"conf/sources/{source.name}.yaml or drop them from the file")

    batch_id = batch_id_for(source, _file_fingerprints(spark, files))
    as_strings = [F.col(f"`{c}`").cast("string").alias(c) for c in declared]
    batch = raw.select(
        *as_strings,
        F.current_timestamp().alias("_ingested_at"),
        F.col("_metadata.file_path").alias("_source_file"),
        F.lit(batch_id).alias("_batch_id"),
    )
    return batch, batch_id
