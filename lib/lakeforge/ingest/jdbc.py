"""Reading a database table over JDBC as a batch, incrementally by a watermark column.

The watermark a batch reached is recorded in the silver MERGE commit (``userMetadata``), so the next run
reads only rows above it, and a run that stopped before silver simply reads the same range again (same
batch id: bronze does not append twice). Values are compared by the database in its own types.
"""

from __future__ import annotations

import hashlib
import re

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import Settings, SourceSpec
from lakeforge.errors import InputError, JdbcSecretMissingError
from lakeforge.ingest.read import RawBatch, check_columns, evolved, with_lineage
from lakeforge.tables import latest_user_metadata

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _reader(spark: SparkSession, settings: Settings, source: SourceSpec):
    spec = source.jdbc
    options = {"url": spec.url, "driver": spec.driver, "fetchsize": str(spec.fetchsize)}
    if spec.user:
        options["user"] = spec.user
    if spec.password_env:
        password = settings.jdbc_passwords.get(source.name)
        if password is None:
            raise JdbcSecretMissingError(f"source '{source.name}' reads its database password from the environment "
                                         f"variable {spec.password_env}, which is not set")
        options["password"] = password.get_secret_value()

    def query(sql: str) -> DataFrame:
        return spark.read.format("jdbc").options(**options).option("query", sql).load()

    return query


def read_jdbc_batch(spark: SparkSession, settings: Settings, source: SourceSpec, silver: str) -> RawBatch | None:
    """The rows of the source's table above the last recorded watermark (all rows without a watermark column);
    None when there is nothing new."""
    spec = source.jdbc
    for name in filter(None, (spec.table, spec.watermark_column)):
        if not _IDENTIFIER.match(name):
            raise InputError(f"source '{source.name}': '{name}' is not a plain table or column name")
    query = _reader(spark, settings, source)
    where, watermark = "", None
    if spec.watermark_column:
        wm = spec.watermark_column
        last = latest_user_metadata(spark, silver, "watermark")
        newer = f"MAX({wm}) > {_quote(last)}" if last is not None else f"MAX({wm}) IS NOT NULL"
        bounds = query(f"SELECT CAST(MAX({wm}) AS TEXT) AS hi, {newer} AS has_new FROM {spec.table}").first()
        if not bounds["has_new"]:
            return None
        watermark = bounds["hi"]
        where = f" WHERE {wm} <= {_quote(watermark)}" + (f" AND {wm} > {_quote(last)}" if last is not None else "")
        key = f"{spec.url}|{spec.table}|{last}|{watermark}"
    else:
        key = f"{spec.url}|{spec.table}|snapshot|{spark.sql('SELECT current_timestamp()').first()[0].isoformat()}"
    raw = query(f"SELECT * FROM {spec.table}{where}")
    location = f"{spec.url.split('?')[0]}#{spec.table}"
    added = check_columns(raw.schema, source, location, typed=True)
    contract = evolved(source, added)
    batch_id = f"{source.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    return RawBatch(with_lineage(raw, contract, batch_id, F.lit(location)), batch_id, contract, added, watermark)
