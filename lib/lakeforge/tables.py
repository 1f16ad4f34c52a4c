"""Small helpers over Delta tables addressed by path (``DeltaTable.forPath(spark, path)`` style)."""

from __future__ import annotations

import json
import logging
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from lakeforge.errors import DeltaConflictError
from lakeforge.spark import session_conf


@dataclass(frozen=True)
class GoldTable:
    """A gold table pinned to one Delta version: what training reads, and the lineage it was built from."""

    path: str
    version: int
    rows: int
    rebuilt: bool
    lineage: dict

log = logging.getLogger(__name__)


def delta_version(spark: SparkSession, path: str) -> int | None:
    """Current version of the Delta table at ``path``, or None when there is no table."""
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def last_commit(spark: SparkSession, path: str) -> dict[str, Any]:
    """The newest commit of the table: version, operation, operationMetrics and parsed userMetadata."""
    row = DeltaTable.forPath(spark, path).history(1).first()
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


def latest_user_metadata(spark: SparkSession, path: str, key: str) -> Any:
    """``userMetadata[key]`` of the newest commit of the table that carries it (None when none does)."""
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    for row in DeltaTable.forPath(spark, path).history().select("version", "userMetadata").orderBy("version", ascending=False).collect():
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
