"""Reading one raw batch of a source, as read, plus lineage columns; structural checks against the contract.

CSV and JSON are read as strings (every value is cast later, row by row, so a bad value quarantines one row);
Parquet and Delta keep their types, and a column whose type family changed is a schema break.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.utils import AnalysisException

from lakeforge.config import ColumnSpec, SourceSpec
from lakeforge.errors import BatchRejectedError
from lakeforge.tables import delta_version

RECORD_COLUMNS = ("_ingested_at", "_source_file", "_batch_id")
CORRUPT = "_corrupt_record"  # the raw text of a line or record the reader could not split into fields


@dataclass(frozen=True)
class RawBatch:
    frame: DataFrame          # declared (and, for additive sources, new) columns + lineage columns
    batch_id: str
    source: SourceSpec        # the contract in force for this batch (additive sources: with new columns)
    added_columns: tuple[str, ...] = ()
    watermark: str | None = None  # incremental sources: the highest watermark value in this batch


def type_family(dtype: T.DataType) -> str:
    """string, boolean, temporal, numeric, or the type's own name."""
    if isinstance(dtype, T.StringType):
        return "string"
    if isinstance(dtype, T.BooleanType):
        return "boolean"
    if isinstance(dtype, (T.DateType, T.TimestampType, T.TimestampNTZType)):
        return "temporal"
    if isinstance(dtype, T.NumericType):
        return "numeric"
    return dtype.simpleString()


_DECLARED_FAMILY = {"string": "string", "boolean": "boolean", "date": "temporal", "timestamp": "temporal",
                    "int": "numeric", "bigint": "numeric", "double": "numeric", "float": "numeric"}


def check_columns(found: T.StructType, source: SourceSpec, where: str, typed: bool) -> tuple[str, ...]:
    """Compare the batch's columns with the contract; return the new columns an additive source accepts.

    Missing or retyped columns always reject the batch; new columns reject a strict source.
    """
    names = [f.name for f in found.fields]
    declared = list(source.column_names)
    contract = f"conf/sources/{source.name}.yaml"
    missing = [c for c in declared if c not in names]
    if missing:
        hint = " (is the delimiter or header option right?)" if len(names) == 1 else ""
        # Without a header a file's first row are its column names: a PII source's names are not repeated
        found_text = (f"{len(names)} column name(s), not shown because the source has PII columns and a file "
                      "without a header names its columns after its first row" if source.pii else f"{names}")
        raise BatchRejectedError(f"source '{source.name}': {where} lacks declared column(s) {missing}; found "
                                 f"{found_text}{hint}. Fix the file or the contract in {contract}")
    if typed:
        types = {f.name: f.dataType for f in found.fields}
        retyped = [f"{c.name}: declared {c.type}, found {types[c.name].simpleString()}" for c in source.columns
                   if type_family(types[c.name]) != _DECLARED_FAMILY[c.type]]
        if retyped:
            raise BatchRejectedError(f"source '{source.name}': {where} changed column type(s): {'; '.join(retyped)}. "
                                     f"Fix the producer or the contract in {contract}")
    extra = tuple(c for c in names if c not in declared and c not in (*RECORD_COLUMNS, CORRUPT, "_metadata"))
    if extra and source.schema_evolution == "strict":
        raise BatchRejectedError(f"source '{source.name}': {where} has column(s) {list(extra)} not in the contract; "
                                 f"add them to {contract} (or set schema_evolution: additive) or drop them from the file")
    return extra


def evolved(source: SourceSpec, added: tuple[str, ...]) -> SourceSpec:
    """The contract with new columns (kept as nullable strings) for an additive source."""
    if not added:
        return source
    return source.model_copy(update={"columns": source.columns + tuple(ColumnSpec(name=c, type="string") for c in added)})


def _file_digest(spark: SparkSession, name: str) -> str:
    """SHA-256 of a file's bytes, streamed through Hadoop's FileSystem in the driver's JVM (any size, any file
    system: s3a://, abfss://, dbfs:/, local), by Apache Commons Codec, which every Spark ships."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(name)
    stream = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).open(path)
    try:
        return jvm.org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream)
    finally:
        stream.close()


def _file_fingerprints(spark: SparkSession, files: list[str]) -> list[str]:
    """The SHA-256 of each input file's bytes, sorted: the same content is the same batch whatever its files are
    called and whenever they were written (``touch`` changes nothing)."""
    return sorted(_file_digest(spark, name) for name in files)


def batch_id_for(source: SourceSpec, fingerprints: list[str]) -> str:
    """Deterministic batch id: the same input (the files' content) gives the same id on every re-run."""
    digest = hashlib.sha256("\n".join([source.name, *fingerprints]).encode()).hexdigest()
    return f"{source.name}-{digest[:16]}"


def with_lineage(raw: DataFrame, source: SourceSpec, batch_id: str, source_file: F.Column) -> DataFrame:
    """Declared columns as strings, the reader's corrupt-record text (or null) and the lineage columns."""
    corrupt = F.col(CORRUPT) if CORRUPT in raw.columns else F.lit(None).cast("string")
    return raw.select(*[F.col(f"`{c}`").cast("string").alias(c) for c in source.column_names], corrupt.alias(CORRUPT),
                      F.current_timestamp().alias("_ingested_at"), source_file.alias("_source_file"),
                      F.lit(batch_id).alias("_batch_id"))


def reader_options(source: SourceSpec, kind: str) -> dict[str, str]:
    """The source's reader options, with its declared encoding for text formats (csv, json)."""
    options = dict(source.options)
    if kind in ("csv", "json") and not {"encoding", "charset"} & {k.lower() for k in options}:
        options["encoding"] = source.encoding
    return options


def read_files_batch(spark: SparkSession, source: SourceSpec, path: str) -> RawBatch:
    """Read ``path`` (a file or folder of csv / json / parquet, or a Delta table) as one batch of ``source``.

    Raises ``BatchRejectedError`` naming the input and the fix when it is missing, unreadable or breaks the
    contract's columns.
    """
    kind = source.file_format if source.kind == "stream_files" else source.kind
    reader = spark.read.format(kind).options(**reader_options(source, kind))
    if kind == "json":
        reader = reader.option("primitivesAsString", "true").option("columnNameOfCorruptRecord", CORRUPT)
    try:
        raw = reader.load(path)  # for CSV this reads the header only
        files = raw.inputFiles()
    except AnalysisException as exc:
        raise BatchRejectedError(f"source '{source.name}': cannot read {path}: {exc.getMessage().splitlines()[0]}") from None
    if not files:
        raise BatchRejectedError(f"source '{source.name}': no input files under {path}")
    where = files[0] if len(files) == 1 else f"{path} ({len(files)} files)"
    added = check_columns(raw.schema, source, where, typed=kind in ("parquet", "delta"))
    contract = evolved(source, added)
    if kind == "csv":
        # Every column as a string, in the file's order, plus the whole line when it has too few or too many fields.
        schema = T.StructType([T.StructField(c, T.StringType()) for c in raw.columns] + [T.StructField(CORRUPT, T.StringType())])
        raw = (reader.schema(schema).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
               .option("enforceSchema", "true").load(path))
    if kind == "delta":
        batch_id = f"{source.name}-v{delta_version(spark, path)}"
        source_file = F.lit(path)
    else:
        batch_id = batch_id_for(source, _file_fingerprints(spark, files))
        source_file = F.col("_metadata.file_path")
    return RawBatch(with_lineage(raw, contract, batch_id, source_file), batch_id, contract, added)
