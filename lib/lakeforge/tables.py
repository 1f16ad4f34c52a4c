"""Delta tables by path or by name: ``Table``, the one locator every stage reads and writes through, and small
helpers over it (versions, commits, retries on conflicts)."""

from __future__ import annotations

import json
import logging
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from delta.tables import DeltaTable, DeltaTableBuilder
from pyspark.sql import DataFrame, DataFrameReader, DataFrameWriter, SparkSession
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from lakeforge.config import StorageSettings
from lakeforge.config.stages import TABLE_LAYERS
from lakeforge.errors import DeltaConflictError, InputError
from lakeforge.spark import session_conf


class Table(str):
    """One Delta table: at a path (``/data/lakehouse/silver/flights``, ``s3a://bucket/silver/flights``) or by
    name in a catalog (``main.lakeforge.silver_flights``: Unity Catalog, or Spark's session catalog).

    A ``Table`` is its identifier (a ``str``), the form lakeforge records in lineage (MLflow tags, predictions
    rows, commit metadata) and reads back with ``Table.of``: a path has a ``/``, a name never does.
    """

    __slots__ = ()

    def __reduce__(self):  # pickled as the plain identifier: rows sent to the JVM (Pyrolite) hold a str
        return str, (str(self),)

    @classmethod
    def of(cls, ref: str) -> "Table":
        return ref if isinstance(ref, Table) else cls(ref)

    @property
    def by_name(self) -> bool:
        return "/" not in self

    @property
    def short_name(self) -> str:
        """The table's own name: the last folder of a path, the last part of a name."""
        return self.rstrip("/").rsplit("/", 1)[-1] if not self.by_name else self.rsplit(".", 1)[-1]

    @property
    def sql(self) -> str:
        """The table in SQL text: ``delta.`<path>``` or the backquoted name."""
        if self.by_name:
            return ".".join(f"`{part}`" for part in self.split("."))
        return f"delta.`{self}`"

    def exists(self, spark: SparkSession) -> bool:
        if self.by_name:
            return spark.catalog.tableExists(str(self))
        return DeltaTable.isDeltaTable(spark, str(self))

    @property
    def _identifier(self) -> str:
        """The name as open-source Delta's ``forName`` and builder parse it (before Delta 4: [schema.]table) in the
        session catalog; a three-part name elsewhere (Unity Catalog: Databricks' Delta takes it)."""
        parts = str(self).split(".")
        return ".".join(parts[1:] if len(parts) == 3 and parts[0] == "spark_catalog" else parts)

    def delta(self, spark: SparkSession) -> DeltaTable:
        return DeltaTable.forName(spark, self._identifier) if self.by_name else DeltaTable.forPath(spark, str(self))

    def load(self, reader: DataFrameReader) -> DataFrame:
        """``reader`` (its options: versionAsOf, readChangeFeed ...) applied to this table."""
        reader = reader.format("delta")
        return reader.table(str(self)) if self.by_name else reader.load(str(self))

    def read(self, spark: SparkSession, version: int | None = None) -> DataFrame:
        """The table, or the table as of ``version``."""
        reader = spark.read if version is None else spark.read.option("versionAsOf", int(version))
        return self.load(reader)

    def save(self, writer: DataFrameWriter, user_metadata: str | None = None) -> None:
        """Write with ``writer`` (mode and options set): a managed table when addressed by name. ``user_metadata``
        goes into the commit (as the session setting: a table created by name ignores the writer's option)."""
        writer = writer.format("delta")
        metadata = {} if user_metadata is None else {"spark.databricks.delta.commitInfo.userMetadata": user_metadata}
        # the writer's own session commits (not necessarily the active one: a thread's spark.newSession())
        with session_conf(getattr(writer, "_spark", None) or SparkSession.active(), metadata):
            writer.saveAsTable(str(self)) if self.by_name else writer.save(str(self))

    def rewrite(self, frame: DataFrame, properties: dict[str, str] | None = None,
                user_metadata: str | None = None) -> None:
        """Replace the whole table with ``frame`` (its schema too), keeping the history: an overwrite by path, and by
        name ``CREATE OR REPLACE TABLE ... AS SELECT`` (open-source Delta before 4 cannot truncate a catalog table
        through a DataFrameWriter overwrite). ``properties``: Delta table properties (``delta.enableChangeDataFeed``)."""
        properties = properties or {}
        metadata = {} if user_metadata is None else {"spark.databricks.delta.commitInfo.userMetadata": user_metadata}
        with session_conf(frame.sparkSession, metadata):
            if not self.by_name:
                frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").options(
                    **properties).save(str(self))
                return
            writer = frame.writeTo(str(self)).using("delta")
            for key, value in properties.items():
                writer = writer.tableProperty(key, value)
            writer.createOrReplace()

    def start(self, writer: DataStreamWriter) -> StreamingQuery:
        """Start the stream ``writer`` into this table."""
        writer = writer.format("delta")
        return writer.toTable(str(self)) if self.by_name else writer.start(str(self))

    def create_builder(self, spark: SparkSession) -> DeltaTableBuilder:
        """``DeltaTable.createIfNotExists`` at this path or name (columns, properties ... added by the caller)."""
        builder = DeltaTable.createIfNotExists(spark)
        if not self.by_name:
            return builder.location(str(self))
        return builder.tableName(self._identifier)


def prepare_storage(spark: SparkSession, storage: StorageSettings) -> None:
    """Tables by name: every schema they live in must exist, or be created when ``storage.create_schema``. Checked
    once per job, before any work."""
    if not storage.by_name:
        return
    on_databricks = spark.conf.get("spark.databricks.clusterUsageTags.sparkVersion", None) is not None
    if int(spark.version.split(".")[0]) < 4 and not on_databricks:
        raise InputError(f"storage.schema: tables by name need Spark 4 with open-source Delta (this is Spark "
                         f"{spark.version}: its Delta cannot overwrite a catalog table, which gold, scoring and "
                         "monitoring do); address tables by path (storage.root) on the Spark 3.5 line, or run on "
                         "Databricks, whose runtime's Delta can")
    schemas = sorted({storage.table_ref(layer, "x").rsplit(".", 1)[0] for layer in TABLE_LAYERS})
    for schema in schemas:
        if spark.catalog.databaseExists(schema):
            continue
        if not storage.create_schema:
            raise InputError(f"storage.schema: schema {schema} does not exist; create it (CREATE SCHEMA {schema}) "
                             "or set storage.create_schema: true")
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {'.'.join(f'`{p}`' for p in schema.split('.'))}")


@dataclass(frozen=True)
class GoldTable:
    """A gold table pinned to one Delta version: what training reads, and the lineage it was built from."""

    path: str  # the table's identifier (``str(Table)``): a path or a name
    version: int
    rows: int
    rebuilt: bool
    lineage: dict

log = logging.getLogger(__name__)


def delta_version(spark: SparkSession, table: Table | str) -> int | None:
    """Current version of the Delta table, or None when there is no table."""
    table = Table.of(table)
    if not table.exists(spark):
        return None
    return int(table.delta(spark).history(1).select("version").first()[0])


def last_commit(spark: SparkSession, table: Table | str) -> dict[str, Any]:
    """The newest commit of the table: version, operation, operationMetrics and parsed userMetadata."""
    row = Table.of(table).delta(spark).history(1).first()
    metadata = row["userMetadata"]
    return {
        "version": int(row["version"]),
        "operation": row["operation"],
        "metrics": {k: int(v) for k, v in (row["operationMetrics"] or {}).items() if v.isdigit()},
        "user_metadata": json.loads(metadata) if metadata else None,
    }


@contextmanager
def idempotent_dml(spark: SparkSession, app_id: str, version: int = 0,
                   user_metadata: dict[str, Any] | None = None) -> Iterator[None]:
    """Run a Delta DML (MERGE, UPDATE, DELETE) at most once per ``(app_id, version)``.

    Delta records the pair in the commit; a later DML under the same pair is skipped. ``user_metadata``
    (JSON) goes into the commit's ``userMetadata``. The session settings are removed again afterwards.
    """
    settings = {"spark.databricks.delta.write.txnAppId": app_id,
                "spark.databricks.delta.write.txnVersion": str(version)}
    if user_metadata is not None:
        settings["spark.databricks.delta.commitInfo.userMetadata"] = json.dumps(user_metadata, sort_keys=True)
    with session_conf(spark, settings):
        yield


def latest_user_metadata(spark: SparkSession, table: Table | str, key: str) -> Any:
    """``userMetadata[key]`` of the newest commit of the table that carries it (None when none does)."""
    table = Table.of(table)
    if not table.exists(spark):
        return None
    for row in table.delta(spark).history().select("version", "userMetadata").orderBy("version", ascending=False).collect():
        if row["userMetadata"]:
            try:
                value = json.loads(row["userMetadata"]).get(key)
            except (json.JSONDecodeError, AttributeError):
                continue
            if value is not None:
                return value
    return None


def _conflicts() -> tuple[type[BaseException], ...]:
    from delta import (
        exceptions as dx,  # importing it makes pyspark raise these typed exceptions
    )

    return (dx.ConcurrentAppendException, dx.ConcurrentDeleteReadException, dx.ConcurrentDeleteDeleteException,
            dx.ConcurrentTransactionException, dx.ConcurrentWriteException, dx.MetadataChangedException,
            dx.ProtocolChangedException)


def retry_on_conflict(action, *, what: str, attempts: int = 6, base_delay: float = 0.2, max_delay: float = 5.0):
    """Run ``action()``; on a Delta concurrency conflict wait (exponential backoff with jitter) and retry.

    Delta resolves what it can itself; what reaches here is a real conflict (a concurrent MERGE touched the
    same files, two writers created one table, an idempotent write raced its twin). Rerunning the whole
    action re-reads the table, so an idempotent write that lost the race becomes a no-op.
    """
    conflicts = _conflicts()
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except conflicts as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if attempt == attempts:
                raise DeltaConflictError(f"{what}: still conflicting with concurrent writers after {attempts} "
                                         f"attempts ({type(exc).__name__}: {first_line})") from exc
            delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * (0.5 + random.random())
            log.warning("%s: %s on attempt %d/%d, retrying in %.2fs", what, type(exc).__name__, attempt, attempts, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
