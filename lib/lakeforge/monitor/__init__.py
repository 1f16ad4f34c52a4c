"""Monitoring: population stability index (PSI) per feature, training rows against scored rows.

Numeric features are cut at the training split's quantiles (nulls get a bin of their own); categorical
features compare category frequencies. All bins of all features are counted in one Spark job per side.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import Settings
from lakeforge.score import ScoreResult
from lakeforge.tables import delta_version
from lakeforge.train.estimator import time_split
from lakeforge.train.registry import find_version, mlflow_client

log = logging.getLogger(__name__)
NULL_BIN = "__null__"
EPSILON = 1e-4  # floor on a bin's share, so an empty bin does not make PSI infinite


@dataclass(frozen=True)
class DriftResult:
    table: str
    table_version: int
    features: dict[str, float]
    alerts: tuple[str, ...]
    warnings: tuple[str, ...]


def monitor_path(settings: Settings) -> str:
    return settings.storage.table_path("monitoring", settings.monitor.table)


def population_stability_index(expected: dict[str, float], actual: dict[str, float]) -> float:
    """PSI = sum over bins of (actual - expected) * ln(actual / expected), shares floored at EPSILON."""
    psi = 0.0
    for bin_ in set(expected) | set(actual):
        e = max(expected.get(bin_, 0.0), EPSILON)
        a = max(actual.get(bin_, 0.0), EPSILON)
        psi += (a - e) * math.log(a / e)
    return psi


def numeric_edges(frame: DataFrame, columns: list[str], bins: int) -> dict[str, list[float]]:
    """Inner cut points per numeric column: the training quantiles, deduplicated."""
    if not columns:
        return {}
    probs = [i / bins for i in range(1, bins)]
    quantiles = frame.approxQuantile(columns, probs, 0.001)
    return {c: sorted(set(q)) for c, q in zip(columns, quantiles)}


def _bin_expr(column: str, edges: list[float] | None) -> Column:
    value = F.col(f"`{column}`")
    if edges is None:  # categorical
        label = value.cast("string")
    else:
        label = F.size(F.filter(F.array(*[F.lit(float(e)) for e in edges]), lambda e: e <= value)).cast("string")
    return F.when(value.isNull(), F.lit(NULL_BIN)).otherwise(label)


def bin_shares(frame: DataFrame, edges: dict[str, list[float] | None]) -> dict[str, dict[str, float]]:
    """Share of rows per (feature, bin), counted in a single job."""
    pairs = F.array(*[F.struct(F.lit(c).alias("feature"), _bin_expr(c, e).alias("bin")) for c, e in edges.items()])
    counts = (frame.select(F.explode(pairs).alias("p")).groupBy("p.feature", "p.bin").count().collect())
    totals: dict[str, int] = {}
    for row in counts:
        totals[row["feature"]] = totals.get(row["feature"], 0) + row["count"]
    shares: dict[str, dict[str, float]] = {c: {} for c in edges}
    for row in counts:
        shares[row["feature"]][row["bin"]] = row["count"] / totals[row["feature"]]
    return shares


def feature_drift(baseline: DataFrame, current: DataFrame, categorical: list[str], numeric: list[str],
                  bins: int) -> dict[str, float]:
    """PSI of every feature, ``current`` against ``baseline``."""
    edges: dict[str, list[float] | None] = {c: None for c in categorical}
    edges.update(numeric_edges(baseline, numeric, bins))
    expected, actual = bin_shares(baseline, edges), bin_shares(current, edges)
    return {c: population_stability_index(expected[c], actual[c]) for c in edges}


def monitor_drift(spark: SparkSession, settings: Settings, scored: ScoreResult) -> DriftResult:
    """Compare the rows scored in ``scored`` with the model's training rows; append PSI per feature to Delta."""
    features, cfg = settings.features, settings.monitor
    client = mlflow_client(settings.mlflow)
    mv = find_version(client, scored.model_name, version=scored.model_version)
    gold, gold_version = mv.tags["gold_table"], int(mv.tags["gold_version"])
    training = spark.read.format("delta").option("versionAsOf", gold_version).load(gold)
    baseline = time_split(training.where(F.col(features.label).isNotNull()), features)[0]
    current = spark.read.format("delta").option("versionAsOf", scored.source_version).load(scored.source_table)
    numeric = [F.col(f"`{c}`").cast("double").alias(c) for c in features.numeric]
    psi = feature_drift(baseline.select(*features.categorical, *numeric), current.select(*features.categorical, *numeric),
                        list(features.categorical), list(features.numeric), cfg.bins)

    def status(value: float) -> str:
        return "alert" if value >= cfg.psi_alert else "warn" if value >= cfg.psi_warn else "ok"

    rows = [(scored.model_name, scored.model_version, scored.source_table, scored.source_version, feature,
             "categorical" if feature in features.categorical else "numeric", "psi", float(value), status(value))
            for feature, value in sorted(psi.items())]
    frame = spark.createDataFrame(
        rows, "model_name string, model_version int, source_table string, source_version long, feature string, "
              "feature_kind string, metric string, value double, status string",
    ).withColumn("computed_at", F.current_timestamp())
    target = monitor_path(settings)
    where = f"model_version = {scored.model_version} AND source_version = {scored.source_version}"
    frame.write.format("delta").mode("overwrite").option("replaceWhere", where).save(target)
    version = delta_version(spark, target)
    alerts = tuple(f for f, v in psi.items() if status(v) == "alert")
    warnings = tuple(f for f, v in psi.items() if status(v) == "warn")
    if alerts:
        log.warning("drift alert (PSI >= %s) on %s", cfg.psi_alert, ", ".join(alerts))
    return DriftResult(target, version, psi, alerts, warnings)
