"""Features: the gold table built by the declared join of silver tables, pinned to their Delta versions."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import Settings
from lakeforge.ingest import silver_path
from lakeforge.tables import delta_version, last_commit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoldTable:
    path: str
    version: int
    rows: int
    rebuilt: bool
    lineage: dict


def entity_key(settings: Settings) -> list[str]:
    """The columns naming one gold row: the base source's primary key (the features if the base is undeclared)."""
    base = settings.sources.get(settings.features.base)
    return list(base.primary_key) if base is not None else list(settings.features.feature_columns)


def gold_path(settings: Settings) -> str:
    return settings.storage.table_path("gold", settings.features.table)


def _lineage(spark: SparkSession, settings: Settings) -> dict:
    features = settings.features
    names = [features.base, *(j.source for j in features.joins)]
    sources = {}
    for name in names:
        path = silver_path(settings, name)
        version = delta_version(spark, path)
        if version is None:
            raise FileNotFoundError(f"the gold table needs silver table '{name}' at {path}, which does not exist; "
                                    f"ingest it first (jobs/ingest.py --source {name})")
        sources[name] = {"path": path, "version": version}
    spec = json.dumps(features.model_dump(mode="json"), sort_keys=True)
    return {"sources": sources, "features_hash": hashlib.sha256(spec.encode()).hexdigest()[:16]}


def assemble_features(spark: SparkSession, settings: Settings, lineage: dict) -> DataFrame:
    """The declared join and derived columns over the silver versions named in ``lineage``."""
    features = settings.features

    def silver(name: str) -> DataFrame:
        src = lineage["sources"][name]
        return spark.read.format("delta").option("versionAsOf", src["version"]).load(src["path"])

    base_spec = settings.sources[features.base]
    frame = silver(features.base).select(*base_spec.column_names)
    for join in features.joins:
        left_keys = join.left_keys or join.keys
        right = silver(join.source).select(
            *[F.col(f"`{k}`").alias(left) for k, left in zip(join.keys, left_keys)],
            *[F.col(f"`{src}`").alias(dst) for src, dst in join.select.items()],
        )
        frame = frame.join(right, on=list(left_keys), how="left")
    for name, expression in features.derived.items():
        frame = frame.withColumn(name, F.expr(expression))
    needed = (*features.feature_columns, features.label, *([features.split.column] if features.split.column else []))
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"features: column(s) {missing} are neither source, joined nor derived columns; "
                         "declare them under features.joins[].select or features.derived")
    return frame


def build_gold_table(spark: SparkSession, settings: Settings, *, force: bool = False) -> GoldTable:
    """(Re)write the gold table unless it already reflects the current silver versions and feature spec."""
    path = gold_path(settings)
    lineage = _lineage(spark, settings)
    if not force and delta_version(spark, path) is not None:
        commit = last_commit(spark, path)
        if commit["user_metadata"] == lineage:
            rows = spark.read.format("delta").load(path).count()
            log.info("gold table %s is up to date (version %s)", path, commit["version"])
            return GoldTable(path, commit["version"], rows, False, lineage)
    frame = assemble_features(spark, settings, lineage)
    (frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
     .option("delta.enableChangeDataFeed", "true")  # incremental scoring reads gold's changes
     .option("userMetadata", json.dumps(lineage, sort_keys=True)).save(path))
    version = delta_version(spark, path)
    rows = spark.read.format("delta").option("versionAsOf", version).load(path).count()
    log.info("gold table %s written: version %s, %s rows", path, version, rows)
    return GoldTable(path, version, rows, True, lineage)
