"""Monitoring of a scored batch against the baseline profile logged with the model's training run.

Per feature: PSI, KS (numeric) or Jensen-Shannon distance (categorical; the chi-square test kept as
information), the null rate and its change; for the model's output (a classifier's probability, a regressor's
prediction): PSI and KS; once labels arrive, realised performance per time window (or overall only, for data
without time): AUC, PR-AUC and calibration of a classifier, RMSE, MAE, bias and R2 of a regressor, on the rows
the model was not trained on (the rows it was trained on are reported apart, never judged). One row per (batch,
feature, metric, window) goes to the ``monitor.table`` Delta table (a rerun replaces the batch's rows), the
metrics and an HTML report go to a monitoring run in MLflow, and alert levels reached become a JSON log line, a
webhook POST (when configured) and, in ``jobs/monitor.py``, exit code 3.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from mlflow.entities import Metric
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import MonitorSettings, Settings
from lakeforge.errors import InputError, MissingInputError
from lakeforge.holdout import in_training, load_spec
from lakeforge.liveness import owner_tags
from lakeforge.models import output_column
from lakeforge.models.profile import build_profile, count_like, load_baseline_profile
from lakeforge.models.registry import ensure_experiment, find_version, mlflow_client
from lakeforge.monitor.alerts import alert_payload, log_alert, post_webhook
from lakeforge.monitor.performance import (WindowPerformance, labelled_predictions, realised_performance,
                                           regression_performance)
from lakeforge.monitor.report import render_report
from lakeforge.monitor.stats import EPSILON, ColumnDrift, compare, population_stability_index, status
from lakeforge.paths import entity_key, gold_table, monitor_table, report_path
from lakeforge.tables import Table, delta_version, retry_on_conflict


class ScoredBatch(Protocol):
    """What monitoring needs to know of a scoring batch (``score.ScoreResult`` is one; so is any record of a batch
    in the predictions table): where its rows are and which model and source versions made them."""

    table: str
    table_version: int
    model_name: str
    model_version: int
    source_table: str
    source_version: int
    batch_id: str | None


log = logging.getLogger(__name__)
__all__ = ["EPSILON", "MonitorResult", "drift_between", "monitor_drift", "monitor_table", "population_stability_index"]

SCHEMA = ("batch_id string, model_name string, model_version int, run_id string, source_table string, "
          "source_version long, kind string, feature string, metric string, window_start date, value double, "
          "warn_threshold double, threshold double, status string")


@dataclass(frozen=True)
class MonitorResult:
    table: str
    table_version: int
    batch_id: str
    model_name: str
    model_version: int
    source_table: str
    source_version: int
    rows_written: int
    features: dict[str, float]  # PSI per feature
    alerts: tuple[dict, ...]  # each: kind, feature, metric, window_start, value, threshold
    warnings: tuple[dict, ...]
    windows: int  # time windows with labelled rows (in-sample or not)
    report_path: str | None
    mlflow_run_id: str
    webhook_delivered: bool | None  # None: no webhook configured, or nothing to alert
    task: str = "classification"
    out_of_sample: dict[str, float] | None = None  # overall realised performance on rows the model never saw
    notes: tuple[str, ...] = ()  # what the report says about what could not be measured


def drift_between(baseline: DataFrame, current: DataFrame, categorical: list[str], numeric: list[str],
                  settings: MonitorSettings) -> dict[str, ColumnDrift]:
    """Profile ``baseline`` and compare ``current`` with it, column by column (two jobs + one)."""
    entries = build_profile(baseline, categorical, numeric, settings)
    counted = count_like(current, entries)
    return {c: compare(c, entries[c], counted[c]) for c in entries}


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _batch_predictions(spark: SparkSession, scored: ScoredBatch) -> DataFrame:
    frame = Table.of(scored.table).read(spark, scored.table_version)
    return frame.where((F.col("model_name") == scored.model_name) & (F.col("model_version") == scored.model_version)
                       & (F.col("batch_id") == scored.batch_id))


def _check_overrides(settings: Settings) -> None:
    unknown = sorted(set(settings.monitor.feature_thresholds) - set(settings.features.feature_columns))
    if unknown:
        raise InputError(f"monitor.feature_thresholds names {unknown}, which are not features (features.categorical "
                         f"and features.numeric: {list(settings.features.feature_columns)})")


def _row(batch: dict, cfg: MonitorSettings, kind: str, feature: str, metric: str, value: float,
         window_start: dt.date | None = None, judged: bool = True) -> dict[str, Any]:
    name = f"prediction_{metric}" if kind == "prediction" else metric
    level = cfg.threshold(name, feature if kind in ("numeric", "categorical") else None)
    if not judged:
        level = level.model_copy(update={"warn": None, "alert": None})
    return {**{k: batch[k] for k in ("batch_id", "model_name", "model_version", "run_id", "source_table",
                                     "source_version")},
            "kind": kind, "feature": feature, "metric": metric, "window_start": window_start, "value": float(value),
            "warn_threshold": level.warn, "threshold": level.alert, "status": status(name, float(value), level)}


def perf_label(settings: Settings) -> str:
    """The ``feature`` of performance rows: the label column they are measured against."""
    return settings.monitor.performance.label or settings.features.label


def labels_table(settings: Settings) -> str:
    return settings.monitor.performance.labels_table or gold_table(settings)


def window_column(settings: Settings) -> str | None:
    """The column performance windows are cut on: ``monitor.performance.window_column``, else the column of a time
    split; None (overall figures only) with ``window: none`` or for data without time."""
    perf, split = settings.monitor.performance, settings.features.split
    if perf.window == "none":
        return None
    return perf.window_column or (split.column if split.kind == "time" else None)


TEMPORAL = ("date", "timestamp", "timestamp_ntz")


def _training_keys(spark: SparkSession, settings: Settings, mv, key: list[str]) -> tuple[DataFrame | None, str | None]:
    """The keys of the rows the model version was trained on (the gold table at the version its tags name, on the
    training side of the split its run logged), or None and the reason they cannot be known."""
    spec = load_spec(mv.run_id) if mv.run_id else None
    table, version = mv.tags.get("gold_table"), mv.tags.get("gold_version")
    if spec is None or table is None or version is None:
        return None, ("the model's training run logged no split (trained before lakeforge recorded it): every "
                      "labelled row counts as out-of-sample; retrain to separate the training rows")
    label = settings.features.label
    try:
        gold = Table.of(table).read(spark, int(version))
        gold.schema  # noqa: B018 - resolves the read: a vacuumed version fails here, before any job
    except Exception as exc:  # noqa: BLE001 - Delta raises several types for a version it cannot read
        return None, (f"the gold table {table} at version {version}, which the model was trained on, cannot be read "
                      f"({str(exc).strip().splitlines()[0][:200]}): every labelled row counts as out-of-sample")
    trained = gold.where(F.col(f"`{label}`").isNotNull())
    return trained.where(in_training(spec, trained)).select(*key), None


def _performance(spark: SparkSession, settings: Settings, predictions: DataFrame, key: list[str], classify: bool,
                 output: str, trained_keys: DataFrame | None) -> list[WindowPerformance]:
    perf = settings.monitor.performance
    table = labels_table(settings)
    if delta_version(spark, table) is None:
        raise MissingInputError(f"labels table {table} is not a Delta table; set monitor.performance.labels_table "
                                "to a table with the entity key, the label and the window column")
    labels = Table.of(table).read(spark)
    column = window_column(settings)
    if column is not None and perf.window_column is None and (
            column not in labels.columns or labels.schema[column].dataType.typeName() not in TEMPORAL):
        log.info("performance is not windowed: the labels table %s has no date or timestamp column %s (the time "
                 "split's column); set monitor.performance.window_column to cut windows", table, column)
        column = None
    rows = labelled_predictions(predictions, labels, key, perf_label(settings), output, column, perf.window, table,
                                classify, trained_keys)
    return realised_performance(rows, perf.calibration_bins) if classify else regression_performance(rows)


def _performance_rows(batch: dict, settings: Settings, windows: list[WindowPerformance],
                      holdout_rmse: float | None) -> list[dict[str, Any]]:
    """Out-of-sample windows are judged (from ``min_rows`` labelled rows on); in-sample ones are information."""
    cfg, label = settings.monitor, perf_label(settings)
    rows = []
    for w in windows:
        values = w.metrics()
        if not w.in_sample and holdout_rmse and "rmse" in values:
            values["rmse_ratio"] = values["rmse"] / holdout_rmse
        kind = "performance_in_sample" if w.in_sample else "performance"
        judged = not w.in_sample and w.rows >= cfg.performance.min_rows
        rows += [_row(batch, cfg, kind, label, metric, value, w.window_start, judged=judged)
                 for metric, value in values.items()]
    return rows


def _effect_gate(rows: list[dict[str, Any]]) -> None:
    """A chi-square p-value given levels only counts where the feature's Jensen-Shannon distance also reaches its
    warn level: with many rows the test flags differences too small to matter."""
    moved = {r["feature"] for r in rows if r["metric"] == "js_distance" and r["status"] in ("warn", "alert")}
    for r in rows:
        if r["metric"] == "chi2_p_value" and r["status"] in ("warn", "alert") and r["feature"] not in moved:
            r["status"] = "ok"


def _write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write a file on the lakehouse's file system (local paths directly, URIs through Hadoop's FileSystem)."""
    if "://" not in path or path.startswith("file:"):
        local = Path(urlparse(path).path if path.startswith("file:") else path)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text, encoding="utf-8")
        return
    jpath = spark._jvm.org.apache.hadoop.fs.Path(path)  # noqa: SLF001 - no public API for single files
    stream = jpath.getFileSystem(spark._jsc.hadoopConfiguration()).create(jpath, True)  # noqa: SLF001
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def _metric_key(row: dict) -> str:
    parts = [row["kind"], row["feature"], row["metric"]]
    return "/".join(re.sub(r"[^A-Za-z0-9_.\- ]", "_", p) for p in parts)


def _log_to_mlflow(settings: Settings, batch: dict, rows: list[dict], html_text: str | None) -> str:
    """A monitoring run in the experiment: every metric (windowed ones with the window's yyyymmdd as step), the
    rows as JSON, the report; tagged with model version and source version."""
    client = mlflow_client(settings.mlflow)
    experiment_id = ensure_experiment(client, settings.mlflow)
    tags = {**owner_tags(), "lakeforge.kind": "monitoring", "model_name": batch["model_name"],
            "model_version": str(batch["model_version"]), "training_run_id": batch["run_id"],
            "source_table": batch["source_table"], "source_version": str(batch["source_version"]),
            "batch_id": batch["batch_id"]}
    run = client.create_run(experiment_id, tags=tags, run_name=f"monitor {batch['model_name']} v{batch['model_version']} "
                            f"{Table.of(batch['source_table']).short_name}@v{batch['source_version']}")
    run_id = run.info.run_id
    try:
        now = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
        metrics = [Metric(_metric_key(r), r["value"], now,
                          int(r["window_start"].strftime("%Y%m%d")) if r["window_start"] else 0) for r in rows]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start:start + 1000])
        client.log_dict(run_id, [{**r, "window_start": r["window_start"] and r["window_start"].isoformat()}
                                 for r in rows], "monitoring/metrics.json")
        if html_text is not None:
            with tempfile.TemporaryDirectory() as folder:
                local = Path(folder) / "report.html"
                local.write_text(html_text, encoding="utf-8")
                client.log_artifact(run_id, str(local), "monitoring")
        client.set_terminated(run_id, "FINISHED")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id


def monitor_drift(spark: SparkSession, settings: Settings, scored: ScoredBatch) -> MonitorResult:
    """Monitor the batch ``scored`` (its rows of the predictions table and its source rows) against the baseline
    profile of its model version; write the metrics, log them and the report to MLflow, raise the alerts."""
    features, cfg = settings.features, settings.monitor
    _check_overrides(settings)
    client = mlflow_client(settings.mlflow)
    mv = find_version(client, scored.model_name, version=scored.model_version)
    profile = load_baseline_profile(mv.run_id, scored.model_name, scored.model_version)
    unprofiled = [c for c in features.feature_columns if c not in profile["features"]]
    if unprofiled:
        raise InputError(f"the baseline profile of {scored.model_name} v{scored.model_version} has no feature(s) "
                         f"{unprofiled}: the model was trained with other features; monitor with the features it "
                         "was trained on, or retrain it")
    if scored.batch_id is None:
        raise InputError(f"{scored.model_name} v{scored.model_version}: the scoring of {scored.source_table} up to "
                         f"version {scored.source_version} wrote no batch (nothing changed); nothing to monitor")
    task = mv.tags.get("task") or "classification"
    classify = task == "classification"
    output = output_column(task)  # the predictions table's column of the model's output
    batch_id = scored.batch_id
    batch = {"batch_id": batch_id, "model_name": scored.model_name, "model_version": int(scored.model_version),
             "run_id": mv.run_id, "source_table": scored.source_table, "source_version": int(scored.source_version)}

    key = entity_key(settings)
    predictions = _batch_predictions(spark, scored)
    counted_prediction = count_like(predictions, {output: profile["prediction"]})[output]
    if counted_prediction["rows"] == 0:
        raise InputError(f"{scored.table} (Delta version {scored.table_version}) has no predictions of "
                         f"{scored.model_name} v{scored.model_version} for {batch_id}; score that batch first")
    own_source = scored.source_table == scored.table  # served traffic: each row carries its features
    source = predictions if own_source else Table.of(scored.source_table).read(spark, scored.source_version)
    missing = [c for c in (*([] if own_source else key), *features.feature_columns) if c not in source.columns]
    if missing:
        raise InputError(f"source {scored.source_table} (Delta version {scored.source_version}) lacks column(s) "
                         f"{missing} needed to monitor its batch")
    current = (source.select(*features.feature_columns) if own_source else
               source.select(*key, *features.feature_columns).join(predictions.select(*key), key, "left_semi"))
    counted = count_like(current, profile["features"])
    drifts = [compare(c, profile["features"][c], counted[c]) for c in features.feature_columns]
    drifts.append(compare(output, profile["prediction"], counted_prediction, prediction=True))

    rows = [_row(batch, cfg, d.kind, d.name, metric, value) for d in drifts for metric, value in d.metrics.items()]
    _effect_gate(rows)
    trained_keys, note = _training_keys(spark, settings, mv, key)
    notes = (note,) if note else ()
    if all(k in predictions.columns for k in key):
        windows = _performance(spark, settings, predictions, key, classify, output, trained_keys)
    else:  # served records need not carry the whole entity key: no labels can be joined to them
        windows, notes = [], (*notes, f"no realised performance: the batch's rows lack the entity key {key}")
    holdout_rmse = None if classify else client.get_run(mv.run_id).data.metrics.get("holdout_rmse")
    rows += _performance_rows(batch, settings, windows, holdout_rmse)

    target = monitor_table(settings)
    frame = spark.createDataFrame([tuple(r[c.split()[0]] for c in SCHEMA.split(", ")) for r in rows], SCHEMA)
    where = (f"model_name = {_sql_string(scored.model_name)} AND model_version = {int(scored.model_version)} "
             f"AND batch_id = {_sql_string(batch_id)}")
    retry_on_conflict(lambda: target.save(frame.withColumn("computed_at", F.current_timestamp()).write
                                          .mode("overwrite").option("replaceWhere", where)), what=f"write {target}")
    table_version = delta_version(spark, target)

    computed = {**batch, "task": task, "computed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    html_text = render_report(computed, drifts, rows, windows, notes) if cfg.report else None
    path = report_path(settings, scored.model_name, scored.model_version, batch_id, scored.source_table,
                       scored.source_version) if cfg.report else None
    if path is not None:
        _write_text(spark, path, html_text)
    run_id = _log_to_mlflow(settings, batch, rows, html_text)

    def brief(r: dict) -> dict:
        return {k: r[k] for k in ("kind", "feature", "metric", "window_start", "value", "threshold")}

    alerts = tuple(brief(r) for r in rows if r["status"] == "alert")
    warnings = tuple(brief(r) for r in rows if r["status"] == "warn")
    delivered = None
    if alerts:
        payload = alert_payload({k: batch[k] for k in ("model_name", "model_version", "batch_id", "source_table",
                                                        "source_version")}, list(alerts))
        log_alert(payload)
        url = settings.webhook_url.get_secret_value() if settings.webhook_url is not None else cfg.webhook_url
        if url:
            delivered = post_webhook(url, payload, cfg.webhook_timeout_seconds)
        elif cfg.webhook_url_env:
            log.error("monitoring webhook not posted: the environment variable %s (monitor.webhook_url_env) is not "
                      "set", cfg.webhook_url_env)
            delivered = False
    log.info("monitored %s with %s v%s: %d metrics, %d alerts, %d warnings into %s", batch_id, scored.model_name,
             scored.model_version, len(rows), len(alerts), len(warnings), target)
    overall = next((w.metrics() for w in windows if w.window_start is None and not w.in_sample), None)
    return MonitorResult(str(target), table_version, batch_id, scored.model_name, int(scored.model_version),
                         scored.source_table, int(scored.source_version), len(rows),
                         {d.name: d.metrics["psi"] for d in drifts if d.kind != "prediction"}, alerts, warnings,
                         len({w.window_start for w in windows if w.window_start is not None}), path, run_id, delivered,
                         task, overall, notes)
