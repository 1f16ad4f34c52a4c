"""Table maintenance: OPTIMIZE (compaction, Z-order on the source's ``zorder_by``) and VACUUM that will not go
below Delta's retention safety limit unless forced."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass


from pyspark.sql import SparkSession

from lakeforge.config import Settings
from lakeforge.errors import InputError, MissingInputError, RetentionTooShortError
from lakeforge.paths import silver_table
from lakeforge.spark import session_conf
from lakeforge.tables import Table

log = logging.getLogger(__name__)
SAFE_RETENTION_HOURS = 168.0  # Delta's default delta.deletedFileRetentionDuration: 7 days


@dataclass(frozen=True)
class MaintenanceResult:
    path: str
    files_removed_by_optimize: int
    files_added_by_optimize: int
    zorder_by: tuple[str, ...]
    vacuum_retention_hours: float
    files_deleted_by_vacuum: int


def _interval_hours(text: str) -> float:
    units = {"second": 1 / 3600, "minute": 1 / 60, "hour": 1.0, "day": 24.0, "week": 168.0}
    match = re.fullmatch(r"\s*(?:interval\s+)?(\d+(?:\.\d+)?)\s+(second|minute|hour|day|week)s?\s*", text.lower())
    if not match:
        raise InputError(f"cannot read the retention interval {text!r}")
    return float(match.group(1)) * units[match.group(2)]


def safe_retention_hours(spark: SparkSession, path: str) -> float:
    """The table's own ``delta.deletedFileRetentionDuration`` in hours (Delta's default when unset)."""
    properties = spark.sql(f"DESCRIBE DETAIL {Table.of(path).sql}").first()["properties"]
    value = properties.get("delta.deletedFileRetentionDuration")
    return _interval_hours(value) if value else SAFE_RETENTION_HOURS


def vacuum_table(spark: SparkSession, path: str, retention_hours: float | None = None, *, force: bool = False) -> int:
    """VACUUM ``path``; returns how many files it deleted. Refuses a retention below the safe one unless ``force``
    (readers of older versions and running writers may still need those files)."""
    safe = safe_retention_hours(spark, path)
    hours = safe if retention_hours is None else retention_hours
    if hours < safe and not force:
        raise RetentionTooShortError(
            f"VACUUM of {path} with {hours:g} hours would delete files younger than the table's retention of {safe:g} "
            "hours, breaking time travel and possibly running readers or writers; use --force if you are sure")
    table = Table.of(path).delta(spark)
    forced = hours < safe
    if forced:
        log.warning("VACUUM of %s below the safe retention (%g < %g hours), as forced", path, hours, safe)
    with session_conf(spark, {"spark.databricks.delta.retentionDurationCheck.enabled": "false"} if forced else {}):
        table.vacuum(hours)
    row = table.history(1).where("operation = 'VACUUM END'").first()
    return int((row["operationMetrics"] or {}).get("numDeletedFiles", 0)) if row else 0


def optimize_table(spark: SparkSession, path: str, zorder_by: tuple[str, ...] = ()) -> tuple[int, int]:
    """Compact small files (and Z-order by ``zorder_by``); returns (files removed, files added)."""
    builder = Table.of(path).delta(spark).optimize()
    metrics = (builder.executeZOrderBy(*zorder_by) if zorder_by else builder.executeCompaction()).first()["metrics"]
    return int(metrics["numFilesRemoved"]), int(metrics["numFilesAdded"])


def maintain_source(spark: SparkSession, settings: Settings, source_name: str, *, retention_hours: float | None = None,
                    force: bool = False) -> MaintenanceResult:
    """OPTIMIZE then VACUUM the silver table of ``source_name``."""
    source = settings.sources[source_name]
    path = silver_table(settings, source_name)
    if not path.exists(spark):
        raise MissingInputError(f"no silver table for source '{source_name}' ({path}); ingest it first")
    removed, added = optimize_table(spark, path, source.zorder_by)
    hours = safe_retention_hours(spark, path) if retention_hours is None else retention_hours
    deleted = vacuum_table(spark, path, hours, force=force)
    return MaintenanceResult(str(path), removed, added, source.zorder_by, hours, deleted)
