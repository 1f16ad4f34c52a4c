"""Features: the gold table built by the declared join of silver tables, pinned to their Delta versions."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge.config import JoinSpec, Settings
from lakeforge.errors import MissingInputError
from lakeforge.features.asof import as_of_join
from lakeforge.paths import entity_key, gold_table, silver_table
from lakeforge.spark import session_conf
from lakeforge.tables import GoldTable, Table, delta_version, last_commit, retry_on_conflict

log = logging.getLogger(__name__)


def _lineage(spark: SparkSession, settings: Settings) -> dict:
    features = settings.features
    names = [features.base, *(j.source for j in features.joins)]
    sources = {}
    for name in names:
        path = silver_table(settings, name)
        version = delta_version(spark, path)
        if version is None:
            raise MissingInputError(f"the gold table needs silver table '{name}' at {path}, which does not exist; "
                                    f"ingest it first (jobs/ingest.py --source {name})")
        sources[name] = {"path": path, "version": version}
    spec = json.dumps(features.model_dump(mode="json"), sort_keys=True)
    return {"sources": sources, "features_hash": hashlib.sha256(spec.encode()).hexdigest()[:16]}


def assemble(settings: Settings, silver: Callable[[str], DataFrame]) -> DataFrame:
    """The declared join and derived columns over the frames ``silver(name)`` gives for each source (lazy: no job
    runs until the result is used, so the check can derive the gold schema from empty frames)."""
    features = settings.features
    base_spec = settings.sources[features.base]
    frame = silver(features.base).select(*[F.col(f"`{c}`") for c in base_spec.column_names])
    for join in features.joins:
        frame = apply_join(frame, silver(join.source), join, settings.sources[join.source].event_time)
    for name, expression in features.derived.items():
        frame = frame.withColumn(name, F.expr(expression))
    return frame


def apply_join(frame: DataFrame, right: DataFrame, join: JoinSpec, event_time: str | None) -> DataFrame:
    """``frame`` left-joined with ``right`` as ``join`` declares: on its keys, or point-in-time (``join.as_of``) on
    ``event_time`` (the source's, unless the join names its own)."""
    left_keys = list(join.left_keys or join.keys)
    if join.as_of is not None:
        return as_of_join(frame, right, left_keys=left_keys, right_keys=list(join.keys),
                          left_time=F.expr(join.as_of.time), right_time=join.as_of.source_time or event_time,
                          lookback_seconds=join.as_of.lookback_seconds, select=dict(join.select),
                          tie_break=join.as_of.tie_break)
    right = right.select(*[F.col(f"`{k}`").alias(left) for k, left in zip(join.keys, left_keys)],
                         *[F.col(f"`{src}`").alias(dst) for src, dst in join.select.items()])
    return frame.join(right, on=left_keys, how="left")


def assemble_features(spark: SparkSession, settings: Settings, lineage: dict) -> DataFrame:
    """The declared join and derived columns over the silver versions named in ``lineage``."""

    def silver(name: str) -> DataFrame:
        src = lineage["sources"][name]
        return Table.of(src["path"]).read(spark, src["version"])

    return assemble(settings, silver)


def _same_schema(a: T.StructType, b: T.StructType) -> bool:
    return [(f.name, f.dataType.simpleString()) for f in a.fields] == [(f.name, f.dataType.simpleString()) for f in b.fields]


def _merge_changes(spark: SparkSession, path: Table, frame: DataFrame, key: list[str], lineage: dict) -> None:
    """One MERGE by entity key: rows whose values changed are updated, new keys inserted, keys no longer produced
    deleted; an unchanged row is not touched, so the Change Data Feed holds only real changes."""
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in key)
    values = [c for c in frame.columns if c not in key]
    changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in values) or "false"
    metadata = {"spark.databricks.delta.commitInfo.userMetadata": json.dumps(lineage, sort_keys=True)}
    with session_conf(spark, metadata):
        (path.delta(spark).alias("t").merge(frame.alias("s"), on)
         .whenMatchedUpdateAll(condition=changed)
         .whenNotMatchedInsertAll()
         .whenNotMatchedBySourceDelete()
         .execute())


def build_gold_table(spark: SparkSession, settings: Settings, *, force: bool = False) -> GoldTable:
    """Bring the gold table up to date with the current silver versions and feature spec (a no-op when it already
    reflects them). The first build writes the table (Change Data Feed on); later builds MERGE by the entity key,
    so only the rows that really changed are rewritten and incremental scoring sees only them. A feature spec
    that changes the columns or their types rewrites the table."""
    path = gold_table(settings)
    lineage = _lineage(spark, settings)
    exists = delta_version(spark, path) is not None
    if not force and exists:
        commit = last_commit(spark, path)
        if commit["user_metadata"] == lineage:
            rows = path.read(spark).count()
            log.info("gold table %s is up to date (version %s)", path, commit["version"])
            return GoldTable(str(path), commit["version"], rows, False, lineage)
    frame = assemble_features(spark, settings, lineage)
    if exists and _same_schema(path.read(spark).schema, frame.schema):
        retry_on_conflict(lambda: _merge_changes(spark, path, frame, entity_key(settings), lineage),
                          what=f"merge into {path}")
    else:
        retry_on_conflict(lambda: path.rewrite(frame, {"delta.enableChangeDataFeed": "true"},  # incremental scoring
                                               user_metadata=json.dumps(lineage, sort_keys=True)),
                          what=f"write {path}")
    commit = last_commit(spark, path)
    version = commit["version"]
    rows = path.read(spark, version).count()
    counts = ", ".join(f"{what} {commit['metrics'].get(metric, 0):,}" for what, metric in (
        ("updated", "numTargetRowsUpdated"), ("inserted", "numTargetRowsInserted"), ("deleted", "numTargetRowsDeleted")))
    log.info("gold table %s: version %s, %s rows (%s)", path, version, rows,
             counts if commit["operation"] == "MERGE" else "written in full")
    return GoldTable(str(path), version, rows, True, lineage)
