"""What the benchmark scripts share: settings pointed at a scratch folder, the local session, and the demo's
gold table built by lakeforge itself from the bundled data."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from pydantic import SecretStr  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from lakeforge.config import MlflowSettings, Settings, StorageSettings, load_settings  # noqa: E402
from lakeforge.demo_data import stage_demo_data  # noqa: E402
from lakeforge.features import GoldTable, build_gold_table  # noqa: E402
from lakeforge.ingest import ingest_source  # noqa: E402
from lakeforge.spark import configure_spark_with_lakeforge, delta_jars_for  # noqa: E402

THREADS = 2
DEMO_SOURCES = ("flights", "weather", "planes", "airports", "airlines")


def bench_settings(workdir: Path, experiment: str, **model_updates) -> Settings:
    """The local environment with its lakehouse and MLflow store under ``workdir``."""
    base = load_settings("local", ROOT / "conf")
    return base.model_copy(update={
        "storage": StorageSettings(root=str(workdir / "lakehouse"), landing=str(workdir / "landing")),
        "mlflow": MlflowSettings(tracking_uri=f"sqlite:///{workdir}/mlflow.db", experiment=experiment),
        "model": base.model.model_copy(update=model_updates),
        "pii_key": SecretStr("benchmark-key"),
    })


def bench_session(settings: Settings, driver_memory: str = "8g", master: str | None = None) -> SparkSession:
    """``local[THREADS]`` (or ``master``) with Delta, quiet logs."""
    spark_settings = settings.spark.model_copy(update={"conf": {**settings.spark.conf,
                                                                "spark.driver.memory": driver_memory}})
    spark = configure_spark_with_lakeforge(SparkSession.builder, spark_settings,
                                           delta_jars=delta_jars_for(spark_settings),
                                           master=master or f"local[{THREADS}]").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def demo_gold(spark: SparkSession, settings: Settings) -> GoldTable:
    """Ingest the bundled demo sources and build the gold table, as the demo does."""
    stage_demo_data(settings.storage.landing)
    for name in DEMO_SOURCES:
        ingest_source(spark, settings, name)
    return build_gold_table(spark, settings)
