"""Incremental scoring that is incremental: a gold rebuild MERGEs by the entity key (updates only rows whose
values changed, inserts new keys, deletes keys that are gone), so gold's Change Data Feed holds only real changes
and ``score --incremental`` scores exactly the changed rows; the newest change per key is deterministic."""

from __future__ import annotations

import random

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from lakeforge.config import ColumnSpec, FeatureSettings, SearchSettings, SourceSpec, SplitSettings
from lakeforge.features import build_gold_table
from lakeforge.ingest import silver_table
from lakeforge.score import score_table
from lakeforge.score.incremental import changed_rows
from lakeforge.tables import last_commit
from lakeforge.train import train_model
from tests.conftest import settings_for

SCHEMA = "id long, c string, x1 double, x2 double, y int"
ITEMS = SourceSpec(name="items", kind="delta", path="items", primary_key=("id",),
                   columns=tuple(ColumnSpec(name=n, type=t) for n, t in
                                 [("id", "bigint"), ("c", "string"), ("x1", "double"), ("x2", "double"), ("y", "int")]))


def _rows(count: int) -> list[tuple]:
    rng = random.Random(5)
    rows = []
    for i in range(count):
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        rows.append((i, rng.choice("abc"), x1, x2, int(x1 + x2 > 0)))
    return rows


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gold_merge")
    base = settings_for(tmp)
    features = FeatureSettings(table="items_features", base="items", label="y", categorical=("c",),
                               numeric=("x1", "x2", "x_sum"), derived={"x_sum": "x1 + x2"},
                               split=SplitSettings(kind="stratified"))
    model = base.model.model_copy(update={"registered_name": "items_model", "min_auc": 0.6,
                                          "params": {"n_estimators": 10, "max_depth": 2},
                                          "search": SearchSettings(strategy="none")})
    settings = base.model_copy(update={"features": features, "model": model, "sources": {"items": ITEMS}})
    silver = silver_table(settings, "items")
    (spark.createDataFrame(_rows(400), SCHEMA).write.format("delta")
     .option("delta.enableChangeDataFeed", "true").save(silver))
    gold = build_gold_table(spark, settings)
    train_model(spark, settings, gold)
    full = score_table(spark, settings)
    return settings, silver, gold, full


def test_a_rebuild_merges_only_what_changed_and_incremental_scoring_scores_only_that(spark, lake):
    settings, silver, first_gold, full = lake
    assert first_gold.rebuilt and full.rows_written == 400
    table = DeltaTable.forPath(spark, silver)
    table.update(F.col("id") == 7, {"x1": F.lit(0.5)})          # one changed row
    table.delete(F.col("id") == 11)                             # one key gone
    spark.createDataFrame([(1000, "b", 0.1, 0.2, 1)], SCHEMA).write.format("delta").mode("append").save(silver)

    gold = build_gold_table(spark, settings)
    commit = last_commit(spark, gold.path)
    assert gold.rebuilt and commit["operation"] == "MERGE"
    assert {m: commit["metrics"][m] for m in ("numTargetRowsUpdated", "numTargetRowsInserted", "numTargetRowsDeleted")
            } == {"numTargetRowsUpdated": 1, "numTargetRowsInserted": 1, "numTargetRowsDeleted": 1}
    feed = (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", gold.version)
            .load(gold.path).select("id", "_change_type").collect())
    assert sorted((r["id"], r["_change_type"]) for r in feed) == [
        (7, "update_postimage"), (7, "update_preimage"), (11, "delete"), (1000, "insert")]
    assert spark.read.format("delta").load(gold.path).where("id = 7").first()["x_sum"] == pytest.approx(
        0.5 + spark.read.format("delta").load(silver).where("id = 7").first()["x2"])

    incremental = score_table(spark, settings, incremental=True)
    assert incremental.rows_written == 2 and incremental.source_from_version == first_gold.version
    scored = (spark.read.format("delta").option("versionAsOf", incremental.table_version).load(incremental.table)
              .where(F.col("batch_id") == incremental.batch_id))
    assert sorted(r["id"] for r in scored.select("id").collect()) == [7, 1000]  # the deleted key is not scored

    again = build_gold_table(spark, settings)  # nothing changed in silver: no new gold version
    assert not again.rebuilt and again.version == gold.version


def test_within_one_commit_an_insert_ranks_above_the_delete_of_the_same_key(spark, tmp_path):
    """A table rewritten in full holds a delete and an insert of every key in one commit: the newest state is the
    insert, every time."""
    path = str(tmp_path / "t")
    spark.createDataFrame([(i, float(i)) for i in range(50)], "id long, v double").write.format("delta") \
        .option("delta.enableChangeDataFeed", "true").save(path)
    spark.createDataFrame([(i, float(i) + 100) for i in range(0, 50, 2)], "id long, v double").write.format("delta") \
        .mode("overwrite").save(path)
    for _ in range(3):
        rows = changed_rows(spark, path, 0, 1, ["id"]).collect()
        assert sorted((r["id"], r["v"]) for r in rows) == [(i, float(i) + 100) for i in range(0, 50, 2)]
