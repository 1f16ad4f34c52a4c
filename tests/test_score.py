"""Batch scoring on real Delta tables with a registered model: lineage columns, batches replaced not duplicated,
both prediction paths agreeing, incremental scoring through the Change Data Feed, and the exits of the job."""

import random
import subprocess

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from lakeforge.config import ColumnSpec, FeatureSettings, SearchSettings, SourceSpec, SplitSettings
from lakeforge.tables import GoldTable
from lakeforge.score import (ChangeDataFeedError, EmptyInputError, PredictionsTableError, latest_scored,
                             predictions_table, score_table)
from lakeforge.train import train_model
from tests.conftest import ROOT, settings_for

SCHEMA = "id long, c string, x1 double, x2 double, y int"
TOY = SourceSpec(name="toy", kind="delta", path="toy", primary_key=("id",),
                 columns=tuple(ColumnSpec(name=n, type=t) for n, t in
                               [("id", "bigint"), ("c", "string"), ("x1", "double"), ("x2", "double"), ("y", "int")]))


def _rows(start, count, seed):
    rng = random.Random(seed)
    out = []
    for i in range(start, start + count):
        x1, x2 = rng.uniform(-1, 1), rng.choice([None, rng.uniform(-1, 1)])
        out.append((i, rng.choice(["a", "b", "c", None]), x1, x2, int(x1 + (x2 or 0) > 0)))
    return out


@pytest.fixture(scope="module")
def scoring(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("score")
    base = settings_for(tmp)
    features = FeatureSettings(table="toy", base="toy", label="y", categorical=("c",), numeric=("x1", "x2"),
                               split=SplitSettings(kind="stratified"))
    model = base.model.model_copy(update={"registered_name": "toy_scorer", "min_auc": 0.6,
                                          "params": {"n_estimators": 20, "max_depth": 3},
                                          "search": SearchSettings(strategy="none")})
    settings = base.model_copy(update={"features": features, "model": model, "sources": {**base.sources, "toy": TOY}})
    gold = str(tmp / "gold_toy")
    (spark.createDataFrame(_rows(0, 2000, 1), SCHEMA).write.format("delta")
     .option("delta.enableChangeDataFeed", "true").save(gold))
    trained = train_model(spark, settings, GoldTable(gold, 0, 2000, True, {}))
    assert trained.champion
    return settings, gold, trained


def _predictions(spark, result):
    return spark.read.format("delta").option("versionAsOf", result.table_version).load(result.table)


def test_full_scoring_writes_lineage_and_replaces_its_batch(spark, scoring):
    settings, gold, trained = scoring
    first = score_table(spark, settings, input_path=gold)
    assert first.rows_written == 2000 and first.source_version == 0 and first.source_from_version is None
    rows = _predictions(spark, first).where(F.col("batch_id") == first.batch_id)
    assert set(rows.columns) == {"id", "probability", "prediction", "label", "model_name", "model_version", "run_id",
                                 "source_table", "source_version", "source_from_version", "batch_id", "scored_at"}
    lineage = rows.select("model_name", "model_version", "run_id", "source_table", "source_version").distinct().collect()
    assert [tuple(r) for r in lineage] == [("toy_scorer", trained.model_version, trained.run_id, gold, 0)]
    assert rows.where((F.col("probability") >= 0.5) != (F.col("prediction") == 1)).isEmpty()

    again = score_table(spark, settings, input_path=gold)
    assert again.batch_id == first.batch_id and again.table_version == first.table_version + 1
    assert _predictions(spark, again).count() == 2000  # replaced, not appended
    assert latest_scored(spark, settings).batch_id == first.batch_id


def test_transform_and_map_in_arrow_give_the_same_probabilities(spark, scoring, tmp_path):
    settings, gold, _ = scoring
    results = {}
    for method in ("transform", "map_in_arrow"):
        variant = settings.model_copy(update={
            "score": settings.score.model_copy(update={"method": method, "arrow_batch_rows": 300}),
            "storage": settings.storage.model_copy(update={"root": str(tmp_path / method)})})
        result = score_table(spark, variant, input_path=gold)
        results[method] = {r.id: r.probability for r in _predictions(spark, result).select("id", "probability").collect()}
    assert results["transform"].keys() == results["map_in_arrow"].keys() and len(results["transform"]) == 2000
    assert max(abs(results["transform"][k] - results["map_in_arrow"][k]) for k in results["transform"]) < 1e-6


def test_incremental_scores_only_changed_rows_and_records_the_version(spark, scoring, tmp_path):
    settings, gold, _ = scoring
    settings = settings.model_copy(update={"storage": settings.storage.model_copy(update={"root": str(tmp_path)})})
    first = score_table(spark, settings, input_path=gold, incremental=True)  # nothing scored yet: everything
    assert first.rows_written == 2000 and first.source_from_version is None

    table = DeltaTable.forPath(spark, gold)
    spark.createDataFrame(_rows(5000, 100, 2), SCHEMA).write.format("delta").mode("append").save(gold)   # v1
    table.update("id < 5", {"x1": F.lit(0.9)})                                                          # v2
    table.delete("id = 5001")                                                                           # v3
    second = score_table(spark, settings, input_path=gold, incremental=True)
    assert (second.source_from_version, second.source_version) == (0, 3)
    scored = _predictions(spark, second).where(F.col("batch_id") == second.batch_id)
    ids = {r.id for r in scored.select("id").collect()}
    assert ids == set(range(5)) | (set(range(5000, 5100)) - {5001})
    assert second.rows_written == 104

    third = score_table(spark, settings, input_path=gold, incremental=True)
    assert third.rows_written == 0 and third.source_from_version == 3 and third.batch_id is None
    assert _predictions(spark, second).count() == 2104


def test_incremental_needs_the_change_data_feed(spark, scoring, tmp_path):
    settings, _, _ = scoring
    plain = str(tmp_path / "plain")
    spark.createDataFrame(_rows(0, 50, 3), SCHEMA).write.format("delta").save(plain)
    settings = settings.model_copy(update={"storage": settings.storage.model_copy(update={"root": str(tmp_path)})})
    score_table(spark, settings, input_path=plain)
    spark.createDataFrame(_rows(50, 5, 3), SCHEMA).write.format("delta").mode("append").save(plain)
    with pytest.raises(ChangeDataFeedError) as err:
        score_table(spark, settings, input_path=plain, incremental=True)
    assert str(err.value) == (
        f"--incremental needs the Change Data Feed of {plain}, which is off; enable it with ALTER TABLE "
        f"delta.`{plain}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true) and score the table once in full "
        "(without --incremental)")


def test_an_empty_input_is_refused_and_nothing_is_written(spark, scoring, tmp_path):
    settings, _, _ = scoring
    empty = str(tmp_path / "empty")
    spark.createDataFrame([], SCHEMA).write.format("delta").save(empty)
    settings = settings.model_copy(update={"storage": settings.storage.model_copy(update={"root": str(tmp_path / "lh")})})
    with pytest.raises(EmptyInputError) as err:
        score_table(spark, settings, input_path=empty)
    assert str(err.value) == f"input {empty} (Delta version 0) has no rows; nothing to score"
    assert not (tmp_path / "lh").exists()


def test_a_predictions_table_without_lineage_columns_is_refused_untouched(spark, scoring, tmp_path):
    settings, gold, _ = scoring
    settings = settings.model_copy(update={"storage": settings.storage.model_copy(update={"root": str(tmp_path)})})
    target = predictions_table(settings)
    # what an older lakeforge wrote: predictions and the model, no source lineage, no batch
    old = spark.createDataFrame([(1, 0.4, 0, "toy_scorer", 1)],
                                "id long, probability double, prediction int, model_name string, model_version int")
    old.write.format("delta").save(target)
    with pytest.raises(PredictionsTableError) as err:
        score_table(spark, settings, input_path=gold)
    assert str(err.value) == (
        f"predictions table {target} has no column(s) source_table, source_version, source_from_version, batch_id: "
        "it was written by an older lakeforge and its rows cannot be replaced by batch; move it aside (or delete "
        "it) and score again, or point score.table at a new table")
    assert DeltaTable.forPath(spark, target).history().count() == 1
    assert spark.read.format("delta").load(target).collect() == old.collect()


def test_the_job_exits_2_with_one_line_for_an_unknown_model(conf_copy, tmp_path):
    out = subprocess.run([str(ROOT / "spark-submit.sh"), "score", "--env", "local", "--conf-dir", str(conf_copy),
                          "--master", "local[1]", "--model", "no_such_model", "--conf", "spark.driver.memory=1g"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("error:")]
    assert errors == [f"error: model 'no_such_model' is not in the registry at sqlite:///{tmp_path}/data/mlflow/mlflow.db; "
                      "train and register it first (jobs/train.py)"]


def test_three_scorers_of_one_batch_at_once_all_succeed_and_write_it_once(spark, scoring, tmp_path):
    import threading

    settings, gold, _ = scoring
    settings = settings.model_copy(update={"storage": settings.storage.model_copy(update={"root": str(tmp_path)})})
    score_table(spark, settings, input_path=gold)  # the table exists: the three then race to replace one batch
    results, errors = [], []

    def score():
        try:
            results.append(score_table(spark, settings, input_path=gold))
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=score) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert errors == [] and len(results) == 3
    assert len({r.batch_id for r in results}) == 1
    predictions = spark.read.format("delta").load(predictions_table(settings))
    # earlier tests of this module change the gold table: the batch holds every row of the version scored
    expected = spark.read.format("delta").option("versionAsOf", results[0].source_version).load(gold).count()
    assert predictions.where(F.col("batch_id") == results[0].batch_id).count() == expected
    assert predictions.groupBy("id").count().where("count > 1").count() == 0
