"""Keyed hashing of PII columns: HMAC-SHA256 with a key that only ever comes from the environment.

The key is captured in a vectorised UDF's closure (shipped to executors inside the pickled function), so it
never appears in a query plan, a log line or the Spark UI. Equal values hash equally under one key, so joins
on a hashed column (``tailnum`` in flights and planes) still work.
"""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf


class PiiKeyMissingError(RuntimeError):
    """A source declares PII columns and no hashing key is configured."""


def hmac_hex(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def hmac_column(column: Column, key: bytes) -> Column:
    """``column`` (cast to string) replaced by its HMAC-SHA256 hex digest; nulls stay null."""
    if not key:
        raise PiiKeyMissingError("an empty PII key is not a key")

    @pandas_udf("string")
    def _hmac(values: pd.Series) -> pd.Series:
        return values.map(lambda v: None if v is None or v is pd.NA else hmac_hex(key, v))

    return _hmac(column.cast("string"))


def masked(column_name: str, key: bytes | None, pii: tuple[str, ...]) -> Column:
    """The column as it may be shown outside bronze: hashed when it is PII, as is otherwise."""
    col = F.col(f"`{column_name}`")
    return hmac_column(col, key) if column_name in pii and key else col
