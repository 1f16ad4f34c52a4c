"""What the notebooks in ``notebooks/`` share: settings for a lakehouse, a small local session, the demo tables,
and the MLflow lookups behind their plots. Notebooks call these and plot; they hold no logic of their own.

    settings = notebook_settings("local")                     # the lakehouse `make demo` writes
    settings = notebook_settings("local", "/tmp/lakehouse")   # a lakehouse of its own (the notebook tests)
    settings = notebook_settings("local", conf_dir="my/conf") # your own dataset: a conf folder of its own
    spark = notebook_session(settings)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import MlflowSettings, Settings, StorageSettings, load_settings
from lakeforge.demo_data import stage_demo_data
from lakeforge.errors import MissingInputError
from lakeforge.ingest import IngestResult, ingest_source
from lakeforge.models import SCORE
from lakeforge.models.load import load_registered
from lakeforge.models.registry import find_version, mlflow_client
from lakeforge.promotion import holdout_rows
from lakeforge.spark import check_java, configure_spark_with_lakeforge, delta_jars_for
from lakeforge.tables import Table, prepare_storage
from lakeforge.train.estimator import LABEL_COL

SMALL_SESSION = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.driver.memory": "3g",
}


def project_conf(start: Path | None = None) -> Path:
    """The ``conf/`` folder of the project a notebook runs in (searched upwards from the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "conf" / "base.yaml").is_file():
            return folder / "conf"
    raise MissingInputError(f"no conf/base.yaml in {here} or above; start the notebook inside the lakeforge project")


def notebook_settings(env: str = "local", lakehouse_root: str | Path | None = None, *,
                      conf_dir: str | Path | None = None,
                      search: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> Settings:
    """``env``'s settings; with ``lakehouse_root``, its tables, landing folder and MLflow store all live there.

    ``search`` overrides keys of ``model.search`` (for example ``{"max_evals": 4}``), ``params`` keys of
    ``model.params``.
    """
    settings = load_settings(env, conf_dir or project_conf())
    updates: dict[str, Any] = {}
    if lakehouse_root is not None:
        root = Path(lakehouse_root).resolve()
        updates["storage"] = StorageSettings(root=str(root / "lakehouse"), landing=str(root / "landing"))
        updates["mlflow"] = MlflowSettings(tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                                           artifact_root=(root / "artifacts").as_uri(),
                                           experiment=settings.mlflow.experiment)
    if search or params:
        model = settings.model
        updates["model"] = model.model_copy(update={
            "search": model.search.model_copy(update=dict(search or {})),
            "params": {**model.params, **(params or {})},
        })
    return settings.model_copy(update=updates) if updates else settings


def notebook_session(settings: Settings, master: str = "local[2]") -> SparkSession:
    """A small local session with Delta, configured the way the jobs configure theirs (``storage.umask`` included:
    the notebook's process and the JVM it starts write with it)."""
    check_java()
    if settings.storage.umask_bits is not None:
        os.umask(settings.storage.umask_bits)
    builder = configure_spark_with_lakeforge(SparkSession.builder, settings.spark,
                                             delta_jars=delta_jars_for(settings.spark), master=master,
                                             extra_conf=SMALL_SESSION)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    prepare_storage(spark, settings.storage)
    return spark


def prepare_tables(spark: SparkSession, settings: Settings, demo_sample_every: int | None = None
                   ) -> list[IngestResult]:
    """Ingest every batch source from its landing folder; with ``demo_sample_every``, first stage the bundled demo
    files (every n-th flight) where missing.

    Ingestion is idempotent: on tables already written (``make demo``, a pipeline run), this reads nothing new.
    """
    if demo_sample_every is not None:
        stage_demo_data(settings.storage.landing, flights_every=demo_sample_every)
    names = sorted(n for n, s in settings.sources.items() if not s.streaming)
    return [ingest_source(spark, settings, name) for name in names]


def classifies(settings: Settings) -> bool:
    return settings.model.task == "classification"


def label_by_window(gold: DataFrame, settings: Settings, window: str = "month") -> pd.DataFrame:
    """Per ``window`` of the time split's column (empty for data without time): rows, rows without a label, and
    the label's mean (a classifier's positive share)."""
    split, label = settings.features.split, settings.features.label
    if split.kind != "time" or gold.schema[split.column].dataType.typeName() not in ("date", "timestamp"):
        return pd.DataFrame()
    start = F.to_date(F.date_trunc(window, F.col(f"`{split.column}`").cast("timestamp"))).alias("window_start")
    return (gold.groupBy(start).agg(F.count(F.lit(1)).alias("rows"),
                                    F.sum(F.col(f"`{label}`").isNull().cast("int")).alias("no_label"),
                                    F.avg(F.col(f"`{label}`")).alias("label_mean"))
            .orderBy("window_start").toPandas())


def performance_table(spark: SparkSession, table: str, batch_id: str) -> pd.DataFrame:
    """Realised performance of a monitored batch, one row per (scope, window): out-of-sample rows first, then
    the rows the model was trained on; the window ``all`` is every labelled row of the scope."""
    rows = (Table.of(table).read(spark)
            .where((F.col("batch_id") == batch_id) & F.col("kind").startswith("performance")).toPandas())
    if rows.empty:
        return rows
    rows["scope"] = rows["kind"].map({"performance": "out-of-sample", "performance_in_sample": "trained on"})
    rows["window"] = rows["window_start"].map(lambda d: "all" if pd.isna(d) else str(d))
    return rows.pivot_table(index=["scope", "window"], columns="metric", values="value").sort_index(
        level=["scope", "window"], ascending=[False, True])


def trial_history(settings: Settings, run_id: str) -> pd.DataFrame:
    """The Hyperopt trials of a training run (its nested runs): one row per trial, in order, with its
    parameters (``param_*``) and validation metric."""
    client = mlflow_client(settings.mlflow)
    run = client.get_run(run_id)
    trials = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'",
                                max_results=10_000)
    rows = [{"trial": t.info.run_name, "status": t.data.tags.get("trial_status"), **t.data.metrics,
             **{f"param_{k}": v for k, v in t.data.params.items()}} for t in trials]
    return pd.DataFrame(rows).sort_values("trial").reset_index(drop=True) if rows else pd.DataFrame()


def run_evaluation(settings: Settings, run_id: str) -> dict[str, Any]:
    """``evaluation/metrics.json`` of a training run: holdout metrics, confusion matrix, feature importance."""
    import mlflow

    mlflow_client(settings.mlflow)
    return mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation/metrics.json")


def holdout_predictions(spark: SparkSession, settings: Settings, *, alias: str | None = None,
                        version: int | None = None) -> pd.DataFrame:
    """A registered version's outputs on the holdout it was evaluated on: ``label`` and ``score`` (a classifier's
    predicted probability, a regressor's prediction)."""
    client = mlflow_client(settings.mlflow)
    mv = find_version(client, settings.model.registered_name, alias=alias, version=version)
    model = load_registered(f"models:/{settings.model.registered_name}/{mv.version}",
                            mv.tags.get("task") or settings.model.task)
    scored = model.score(holdout_rows(spark, settings, mv.tags, mv.run_id), keep=[LABEL_COL])
    return scored.select(F.col(LABEL_COL).alias("label"), F.col(SCORE).alias("score")).toPandas()


def registered_versions(settings: Settings) -> pd.DataFrame:
    """Every registered version of the model: aliases, holdout score, lineage tags, newest first."""
    client = mlflow_client(settings.mlflow)
    name = settings.model.registered_name
    aliases: dict[int, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():  # search results carry no aliases
        aliases.setdefault(int(version), []).append(alias)
    versions = client.search_model_versions(f"name='{name}'")
    rows = [{"version": int(mv.version), "aliases": ", ".join(sorted(aliases.get(int(mv.version), []))), "run_id": mv.run_id,
             **{k: v for k, v in mv.tags.items() if k.startswith(("holdout_", "gold_"))}} for mv in versions]
    return pd.DataFrame(rows).sort_values("version", ascending=False).reset_index(drop=True)


def strip_outputs(paths: list[str | Path]) -> list[Path]:
    """Clear the outputs, execution counts and execution timings of notebooks (they are committed without)."""
    import nbformat

    changed = []
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        if nbformat.writes(nb) != before:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="notebook housekeeping")
    parser.add_argument("--strip", nargs="+", metavar="NOTEBOOK", required=True,
                        help="clear outputs and execution counts (make strip-notebooks)")
    for stripped in strip_outputs(parser.parse_args().strip):
        print(f"stripped {stripped}")
