"""``Table``, the one locator of a Delta table: the same calls by path and by name (a managed table of Spark's
session catalog), and ``prepare_storage``, which checks the schemas of tables by name before any work."""

from __future__ import annotations

import uuid

import pytest
from pyspark.sql import functions as F

from lakeforge.config import StorageSettings
from lakeforge.errors import InputError
from lakeforge.tables import Table, delta_version, last_commit, prepare_storage


def test_a_name_has_no_slash_and_a_path_has_one():
    by_name, by_path = Table.of("main.lakeforge.silver_flights"), Table.of("s3a://bucket/lake/silver/flights")
    assert (by_name.by_name, by_path.by_name) == (True, False)
    assert by_name.sql == "`main`.`lakeforge`.`silver_flights`" and by_path.sql == "delta.`s3a://bucket/lake/silver/flights`"
    assert (by_name.short_name, by_path.short_name) == ("silver_flights", "flights")
    assert Table.of(by_name) is by_name and by_name == "main.lakeforge.silver_flights"  # the identifier itself


@pytest.fixture(params=["path", "name"])
def table(request, spark, tmp_path):
    if request.param == "path":
        return Table.of(str(tmp_path / "t"))
    schema = f"tables_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA spark_catalog.{schema}")
    return Table.of(f"spark_catalog.{schema}.t")


def test_the_same_calls_write_read_and_travel_by_path_and_by_name(spark, table):
    assert not table.exists(spark) and delta_version(spark, table) is None
    rows = spark.createDataFrame([(1, "a"), (2, "b")], "k int, v string")
    table.save(rows.write.mode("append"), user_metadata='{"batch_id": "b1"}')
    table.save(rows.where("k = 2").withColumn("v", F.lit("c")).write.mode("overwrite").option("replaceWhere", "k = 2"),
               user_metadata='{"batch_id": "b2"}')
    assert table.exists(spark) and delta_version(spark, table) == 1
    assert sorted(tuple(r) for r in table.read(spark).collect()) == [(1, "a"), (2, "c")]
    assert sorted(tuple(r) for r in table.read(spark, 0).collect()) == [(1, "a"), (2, "b")]
    assert last_commit(spark, table)["user_metadata"] == {"batch_id": "b2"}
    assert table.delta(spark).history().count() == 2
    assert spark.sql(f"SELECT count(*) FROM {table.sql}").first()[0] == 2


def test_a_write_from_another_session_carries_its_metadata_in_that_session(spark, tmp_path):
    """A notebook or a job thread may write through a session of its own (``spark.newSession()``) while another one
    is the active session: the metadata goes into that write's commit, set on the session that writes."""
    other, table = spark.newSession(), Table.of(str(tmp_path / "t"))
    spark.createDataFrame([(0,)], "k int")  # as many calls of the first session do, makes it the active one
    table.save(other.range(1).select(F.col("id").cast("int").alias("k")).write.mode("append"),
               user_metadata='{"batch_id": "b1"}')
    assert last_commit(other, table)["user_metadata"] == {"batch_id": "b1"}
    key = "spark.databricks.delta.commitInfo.userMetadata"
    assert spark.conf.get(key, None) is None and other.conf.get(key, None) is None


def test_a_created_table_keeps_its_properties_by_path_and_by_name(spark, table):
    table.create_builder(spark).addColumn("k", "INT", nullable=False).property(
        "delta.enableChangeDataFeed", "true").execute()
    properties = spark.sql(f"DESCRIBE DETAIL {table.sql}").first()["properties"]
    assert properties["delta.enableChangeDataFeed"] == "true"
    table.save(spark.createDataFrame([(1,)], "k int").write.mode("append"))
    changes = table.load(spark.read.option("readChangeFeed", "true").option("startingVersion", 1))
    assert [r["_change_type"] for r in changes.collect()] == ["insert"]


def test_a_missing_schema_is_named_before_any_work(spark):
    schema = f"missing_{uuid.uuid4().hex[:8]}"
    storage = StorageSettings(catalog="spark_catalog", schema=schema, files="/tmp/files", landing="/tmp/landing")
    with pytest.raises(InputError) as err:
        prepare_storage(spark, storage)
    assert str(err.value) == (f"storage.schema: schema spark_catalog.{schema} does not exist; create it (CREATE SCHEMA "
                              f"spark_catalog.{schema}) or set storage.create_schema: true")
    prepare_storage(spark, storage.model_copy(update={"create_schema": True}))
    assert spark.catalog.databaseExists(f"spark_catalog.{schema}")


def test_tables_by_name_outlive_the_job_in_a_local_metastore(conf_copy, tmp_path):
    """``--env local_catalog``: one job (spark-submit) ingests a source into a managed table; a second process
    (the ``lakeforge`` command, a session of its own) finds it by name in the Derby metastore the first one left."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lakeforge.demo_data import stage_demo_data
    from tests.conftest import ROOT, TEST_PII_KEY

    stage_demo_data(conf_copy.parent / "data" / "landing", ("airlines",))
    env = {**os.environ, "LAKEFORGE_PII_KEY": TEST_PII_KEY}
    common = ["--env", "local_catalog", "--conf-dir", str(conf_copy)]
    ingest = subprocess.run([str(ROOT / "spark-submit.sh"), "ingest", *common, "--source", "airlines"],
                            capture_output=True, text=True, env=env, timeout=900)
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    maintain = subprocess.run([str(Path(sys.executable).parent / "lakeforge"), "maintain", *common, "--source",
                               "airlines"], capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert maintain.returncode == 0, maintain.stderr[-3000:]
    result = json.loads(maintain.stdout.strip().splitlines()[-1])
    assert result["path"] == "spark_catalog.lakeforge.silver_airlines"
    warehouse = conf_copy.parent / "data" / "catalog" / "warehouse" / "lakeforge.db"
    assert sorted(p.name for p in warehouse.iterdir()) == ["bronze_airlines", "dq_metrics", "job_runs",
                                                          "silver_airlines"]
    assert (warehouse / "silver_airlines" / "_delta_log").is_dir()
    assert not (conf_copy.parent / "data" / "lakehouse").exists()  # nothing by path


def test_a_table_replaced_in_full_keeps_its_history_by_path_and_by_name(spark, table):
    table.rewrite(spark.createDataFrame([(1, "a")], "k int, v string"), {"delta.enableChangeDataFeed": "true"})
    table.rewrite(spark.createDataFrame([(2.5,)], "x double"), {"delta.enableChangeDataFeed": "true"},
                  user_metadata='{"lineage": 2}')
    assert [tuple(r) for r in table.read(spark).collect()] == [(2.5,)] and table.read(spark, 0).count() == 1
    assert last_commit(spark, table)["user_metadata"] == {"lineage": 2} and delta_version(spark, table) == 1
    properties = spark.sql(f"DESCRIBE DETAIL {table.sql}").first()["properties"]
    assert properties["delta.enableChangeDataFeed"] == "true"
