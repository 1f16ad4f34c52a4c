"""Splits (stratified holdout, validation rows, cross-validation folds), early stopping, the regressor, and the
worker count: on small seeded data, with exact assertions where the numbers are exact."""

import datetime as dt
import json
import random

import pytest

from lakeforge.config import FeatureSettings, SplitSettings
from lakeforge.tables import GoldTable
from lakeforge.train import train_model
from lakeforge.train.checks import TrainingConfigError, check_cluster
from lakeforge.models.registry import mlflow_client
from lakeforge.train.splits import fold_column, stratified_split
from tests.conftest import settings_for

SCHEMA = "id long, c string, x1 double, x2 double, y int, amount double, w double, d date"


@pytest.fixture(scope="module")
def gold(spark, tmp_path_factory):
    """An imbalanced label (about 20% positives) and a continuous target, both learnable from x1, x2."""
    rng = random.Random(5)
    rows = []
    for i in range(3000):
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        y = int(x1 + 0.5 * x2 > 0.6)
        amount = 10 * x1 - 5 * x2 * x2 + rng.gauss(0, 0.5)
        rows.append((i, rng.choice("abc"), x1, x2, y, amount, 1.0 + y, dt.date(2024, 1, 1) + dt.timedelta(days=i % 90)))
    path = str(tmp_path_factory.mktemp("gold") / "toy")
    spark.createDataFrame(rows, SCHEMA).write.format("delta").save(path)
    return GoldTable(path, 0, len(rows), True, {})


def _settings(tmp_path, split: SplitSettings, label="y", task="classification", **model_updates):
    from lakeforge.config import SearchSettings
    base = settings_for(tmp_path)
    features = FeatureSettings(table="toy", base="toy", label=label, categorical=("c",), numeric=("x1", "x2"),
                               split=split)
    model = base.model.model_copy(update={
        "registered_name": f"toy_{task}", "task": task, "min_auc": 0.6,
        "params": {"n_estimators": 40, "max_depth": 3, "learning_rate": 0.3},
        "search": SearchSettings(strategy="none"), **model_updates})
    return base.model_copy(update={"features": features, "model": model})


def test_stratified_split_keeps_the_class_balance_and_is_seeded(spark):
    frame = spark.createDataFrame([(i, float(i % 10 == 0)) for i in range(5000)], "id long, label double")
    rest, held = stratified_split(frame, ["id"], "label", 0.2, seed=7)
    counts = dict(held.groupBy("label").count().collect())
    assert counts == {0.0: pytest.approx(900, abs=5), 1.0: pytest.approx(100, abs=2)}
    assert rest.count() + held.count() == 5000
    assert rest.join(held, "id").isEmpty()
    same = stratified_split(frame, ["id"], "label", 0.2, seed=7)[1]
    other = stratified_split(frame, ["id"], "label", 0.2, seed=8)[1]
    ids = {r.id for r in held.select("id").collect()}
    assert ids == {r.id for r in same.select("id").collect()}
    assert ids != {r.id for r in other.select("id").collect()}


def test_folds_are_disjoint_equal_and_stratified(spark):
    frame = spark.createDataFrame([(i, float(i % 4 == 0)) for i in range(4000)], "id long, label double")
    folds = frame.withColumn("fold", fold_column(frame, 5, ["id"], seed=3))
    sizes = {(r["fold"], r["label"]): r["count"] for r in folds.groupBy("fold", "label").count().collect()}
    assert sorted({f for f, _ in sizes}) == [0, 1, 2, 3, 4]
    for fold in range(5):
        assert sizes[(fold, 1.0)] == pytest.approx(200, abs=3) and sizes[(fold, 0.0)] == pytest.approx(600, abs=5)


def test_a_time_split_needs_its_column_and_date():
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="a time split needs column and test_from"):
        SplitSettings(kind="time", column="d")
    assert SplitSettings(kind="stratified").test_fraction == 0.2


def test_stratified_holdout_with_cross_validation(spark, gold, tmp_path):
    settings = _settings(tmp_path, SplitSettings(kind="stratified", test_fraction=0.25, cv_folds=3))
    result = train_model(spark, settings, gold)
    client = mlflow_client(settings.mlflow)
    run = client.get_run(result.run_id)
    assert run.data.metrics["test_rows"] == pytest.approx(750, abs=8)
    assert result.metrics["positive_rate"] == pytest.approx(run.data.metrics["train_positive_rate"], abs=0.01)
    path = client.download_artifacts(result.run_id, "cv/folds.json", str(tmp_path))
    folds = json.loads(open(path).read())
    aucs = [f["auc"] for f in folds["per_fold"]]
    assert len(aucs) == 3 and min(aucs) > 0.9
    assert run.data.metrics["cv_auc_mean"] == pytest.approx(sum(aucs) / 3)
    assert run.data.metrics["cv_auc_std"] > 0
    assert sum(f["rows"] for f in folds["per_fold"]) == run.data.metrics["train_rows"]


def test_early_stopping_on_validation_rows(spark, gold, tmp_path):
    settings = _settings(tmp_path, SplitSettings(column="d", test_from="2024-03-15"),
                         params={"n_estimators": 500, "max_depth": 3, "learning_rate": 0.5, "early_stopping_rounds": 5},
                         num_workers=2)  # validation rows are the latest days: both workers must still get some
    result = train_model(spark, settings, gold)
    metrics = mlflow_client(settings.mlflow).get_run(result.run_id).data.metrics
    assert metrics["boosted_rounds"] < 500
    assert metrics["best_iteration"] < metrics["boosted_rounds"]
    assert result.metrics["auc"] > 0.95


def test_a_regressor_is_gated_on_rmse(spark, gold, tmp_path):
    settings = _settings(tmp_path, SplitSettings(kind="stratified"), label="amount", task="regression", max_rmse=2.0)
    result = train_model(spark, settings, gold)
    assert set(result.metrics) == {"rmse", "mae", "r2", "mean_label", "rows"}
    assert result.metrics["r2"] > 0.9 and result.champion
    assert result.decision["metric"] == "rmse" and "passes the threshold" in result.decision["reason"]
    client = mlflow_client(settings.mlflow)
    files = {a.path for a in client.list_artifacts(result.run_id, "evaluation")}
    assert "evaluation/predicted_vs_actual.png" in files and "evaluation/residuals.png" in files

    too_strict = settings.model_copy(update={"model": settings.model.model_copy(
        update={"max_rmse": 0.01, "params": {"n_estimators": 5, "max_depth": 2}})})
    worse = train_model(spark, too_strict, gold)
    assert not worse.champion
    assert worse.decision["reason"] == f"holdout RMSE {worse.metrics['rmse']:.4f} is above model.max_rmse 0.01"


def test_weights_and_auto_workers(spark, gold, tmp_path):
    assert check_cluster(spark, "auto") == 2
    settings = _settings(tmp_path, SplitSettings(kind="stratified"), weight_col="w", num_workers="auto")
    result = train_model(spark, settings, gold)
    params = mlflow_client(settings.mlflow).get_run(result.run_id).data.params
    assert params["num_workers"] == "2" and params["weight_col"] == "w"

    missing = _settings(tmp_path, SplitSettings(kind="stratified"), weight_col="weights")
    with pytest.raises(TrainingConfigError) as err:
        train_model(spark, missing, gold, force=True)
    assert str(err.value) == (f"gold table {gold.path} (version 0) has no model.weight_col 'weights'; declare the "
                              "column under features.derived or a join's select")


def test_a_split_that_leaves_a_side_empty_is_named(spark, gold, tmp_path):
    settings = _settings(tmp_path, SplitSettings(column="d", test_from="2030-01-01"))
    with pytest.raises(ValueError, match=r"features.split \(time: d >= 2030-01-01 is the holdout\) leaves the train"):
        train_model(spark, settings, gold)
