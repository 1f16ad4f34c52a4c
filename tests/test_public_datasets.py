"""lakeforge on data other than the flights, as a new user would run it: two real public datasets from PyPI
packages (tests/support/public_data.py), each configured by YAML alone in a conf folder of its own, through
``./spark-submit.sh pipeline --env test --conf-dir DIR`` end to end:

- Seattle's daily weather, a regression with a date column (time split, quarterly monitoring windows);
- the Wisconsin breast cancer data, a classification without any time column and without joins (stratified
  split, a Hyperopt search, monitoring without windows).

Each must exit 0 with rows in every table, a monitoring report, and a holdout score within a stated margin of
single-process xgboost fitted on the same split with the same parameters: RMSE at most 3% above it, AUC at most
0.01 below it. A misnamed column in the YAML fails before anything is ingested, naming the file, key and column.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from pyspark.sql import functions as F
from sklearn.metrics import mean_squared_error, roc_auc_score

from lakeforge.config import load_settings
from lakeforge.holdout import in_training, load_spec
from lakeforge.models.registry import mlflow_client
from tests.support.public_data import ROOT, project

RMSE_MARGIN = 1.03  # lakeforge's holdout RMSE <= 1.03 x single-process xgboost's
AUC_MARGIN = 0.01   # lakeforge's holdout AUC >= single-process xgboost's - 0.01
BOOSTER_PARAMS = ("n_estimators", "max_depth", "learning_rate", "subsample", "colsample_bytree", "min_child_weight",
                  "tree_method")


def _job(job: str, conf: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "spark-submit.sh"), job, "--env", "test", "--conf-dir", str(conf), *extra],
                          capture_output=True, text=True, timeout=1200, env=dict(os.environ))


def _pipeline(name: str, where: Path) -> dict:
    conf = project(name, where)
    run = _job("pipeline", conf)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    settings = load_settings("test", conf)
    client = mlflow_client(settings.mlflow)
    version = client.get_model_version_by_alias(settings.model.registered_name, "champion")
    return {"settings": settings, "run": run, "client": client, "version": version,
            "training": client.get_run(version.run_id)}


@pytest.fixture(scope="module")
def seattle(tmp_path_factory):
    return _pipeline("seattle_weather", tmp_path_factory.mktemp("seattle"))


@pytest.fixture(scope="module")
def tumours(tmp_path_factory):
    return _pipeline("breast_cancer", tmp_path_factory.mktemp("tumours"))


def _table(spark, settings, layer: str, name: str):
    return spark.read.format("delta").load(settings.storage.table_ref(layer, name))


def _split(spark, ran):
    """The gold rows with a label, as pandas, with the side of the split the model's run logged."""
    settings = ran["settings"]
    gold = _table(spark, settings, "gold", settings.features.table)
    gold = gold.where(F.col(settings.features.label).isNotNull())
    spec = load_spec(ran["version"].run_id)
    return gold.withColumn("__train", in_training(spec, gold)).toPandas()


def _encoded(frame, features, train):
    """Features as lakeforge's pipeline gives them to xgboost: categoricals indexed by frequency in the training
    rows (ties alphabetical, unseen last), numerics as floats with NaN for null."""
    columns = {}
    for c in features.categorical:
        counts = train[c].value_counts()
        order = sorted(counts.index, key=lambda v: (-counts[v], v))
        index = {v: i for i, v in enumerate(order)}
        columns[c] = frame[c].map(lambda v: index.get(v, len(index))).astype(float)
    for c in features.numeric:
        columns[c] = frame[c].astype(float)
    return np.column_stack([columns[c] for c in features.feature_columns])


def _booster_params(ran) -> dict:
    logged = ran["training"].data.params
    params = {k: logged[k] for k in BOOSTER_PARAMS if k in logged}
    cast = {"n_estimators": lambda v: int(float(v)), "max_depth": lambda v: int(float(v)), "tree_method": str}
    return {k: cast.get(k, float)(v) for k, v in params.items()}


def test_the_regression_runs_end_to_end_with_every_table(spark, seattle):
    settings = seattle["settings"]
    assert "lakeforge pipeline finished" in seattle["run"].stdout
    assert _table(spark, settings, "silver", "weather").count() == 1461
    assert _table(spark, settings, "gold", "daily_weather").count() == 1461
    predictions = _table(spark, settings, "predictions", "temp_max_predictions")
    assert predictions.count() == 1461 and predictions.where(F.col("prediction").isNull()).count() == 0
    assert predictions.where(F.col("probability").isNotNull()).count() == 0  # a regressor has no probability
    monitoring = _table(spark, settings, "monitoring", "monitoring_metrics").toPandas()
    assert set(monitoring.kind) == {"numeric", "categorical", "prediction", "performance", "performance_in_sample"}
    assert (monitoring.status == "alert").sum() == 0
    assert list(Path(settings.storage.root, "monitoring", "reports").rglob("*.html"))
    # the regressor's Spark-free serving model gives the batch predictions of the holdout rows
    metrics = seattle["training"].data.metrics
    assert metrics["serving_parity_max_abs_diff"] <= 1e-6 and metrics["serving_parity_rows"] > 0
    assert seattle["version"].tags["serving_model_uri"].startswith("models:/")


def test_the_regression_is_monitored_out_of_sample_per_quarter(spark, seattle):
    settings, training = seattle["settings"], seattle["training"]
    rows = _table(spark, settings, "monitoring", "monitoring_metrics").toPandas()
    perf = rows[rows.kind == "performance"]
    assert set(perf.metric) == {"labelled_rows", "rmse", "mae", "mean_error", "r2", "mean_label", "mean_prediction",
                                "rmse_ratio"}
    # the training years are reported apart; 2015, the holdout, is what the model never saw
    in_sample = rows[rows.kind == "performance_in_sample"]
    assert sorted({str(d) for d in in_sample.window_start.dropna()}) == [
        f"{y}-{m:02d}-01" for y in (2012, 2013, 2014) for m in (1, 4, 7, 10)]
    assert sorted({str(d) for d in perf.window_start.dropna()}) == ["2015-01-01", "2015-04-01", "2015-07-01",
                                                                     "2015-10-01"]
    assert set(in_sample.status) == {"info"}
    overall = perf[perf.window_start.isna()].set_index("metric").value
    assert overall["labelled_rows"] == training.data.metrics["test_rows"] == 365
    assert overall["rmse"] == pytest.approx(training.data.metrics["holdout_rmse"], rel=1e-9)
    assert overall["r2"] == pytest.approx(training.data.metrics["holdout_r2"], rel=1e-9)
    assert overall["rmse_ratio"] == pytest.approx(1.0, rel=1e-9)


def test_the_regression_matches_single_process_xgboost(spark, seattle):
    settings, training = seattle["settings"], seattle["training"]
    frame = _split(spark, seattle)
    train, test = frame[frame.__train], frame[~frame.__train]
    assert (len(train), len(test)) == (1096, 365)
    single = xgb.XGBRegressor(**_booster_params(seattle), random_state=settings.model.seed)
    single.fit(_encoded(train, settings.features, train), train[settings.features.label])
    reference = mean_squared_error(test[settings.features.label],
                                   single.predict(_encoded(test, settings.features, train))) ** 0.5
    assert training.data.metrics["holdout_rmse"] <= RMSE_MARGIN * reference


def test_the_classification_without_time_runs_end_to_end(spark, tumours):
    settings, training = tumours["settings"], tumours["training"]
    assert _table(spark, settings, "silver", "tumours").count() == 569
    predictions = _table(spark, settings, "predictions", "malignancy_predictions")
    assert predictions.count() == 569
    rows = _table(spark, settings, "monitoring", "monitoring_metrics").toPandas()
    assert (rows.status == "alert").sum() == 0
    perf = rows[rows.kind == "performance"]
    assert perf.window_start.isna().all()  # no time: overall figures only
    overall = perf.set_index("metric").value
    assert overall["labelled_rows"] == training.data.metrics["test_rows"]
    assert overall["auc"] == pytest.approx(training.data.metrics["holdout_auc"], abs=1e-9)
    # a quarter of each class was held out; the other rows are reported apart
    in_sample = rows[rows.kind == "performance_in_sample"].set_index("metric").value
    assert in_sample["labelled_rows"] + overall["labelled_rows"] == 569
    assert int(training.data.metrics["search_trials"]) >= 1


def test_the_classification_matches_single_process_xgboost(spark, tumours):
    settings, training = tumours["settings"], tumours["training"]
    frame = _split(spark, tumours)
    train, test = frame[frame.__train], frame[~frame.__train]
    label = settings.features.label
    for side in (train, test):  # stratified: each side keeps the share of malignant tumours
        assert side[label].mean() == pytest.approx(frame[label].mean(), abs=0.02)
    single = xgb.XGBClassifier(**_booster_params(tumours), random_state=settings.model.seed)
    single.fit(_encoded(train, settings.features, train), train[label])
    reference = roc_auc_score(test[label], single.predict_proba(_encoded(test, settings.features, train))[:, 1])
    assert training.data.metrics["holdout_auc"] >= reference - AUC_MARGIN


def test_a_misnamed_column_fails_before_anything_is_ingested(tmp_path):
    conf = project("seattle_weather", tmp_path)
    base = conf / "base.yaml"
    base.write_text(base.read_text().replace("numeric: [precipitation, temp_min,", "numeric: [precipitation, tmin,"))
    expected = ("error: the configuration of environment 'test' names what its tables do not have (1 problem(s)):\n"
                "  conf/base.yaml: features.numeric[1]: column 'tmin' is not in the gold table (the declared joins and "
                "derived columns); did you mean 'temp_min'? (its columns: date, precipitation, temp_max, temp_min, "
                "wind, weather, day_of_year); declare it under features.derived or a join's select")
    for job in ("check", "pipeline"):
        run = _job(job, conf)
        assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
        output = run.stdout + run.stderr
        assert expected in output, output[-3000:]
        assert "Traceback" not in output
    lakehouse = tmp_path / "data" / "lakehouse"  # only the failed job's row in operations/job_runs
    assert not [layer for layer in ("bronze", "silver", "quarantine", "gold") if (lakehouse / layer).exists()]
    assert not (tmp_path / "data" / "mlflow").exists()


def test_the_check_job_says_what_it_checked(tmp_path):
    run = _job("check", project("breast_cancer", tmp_path))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert re.search(r"configuration of environment 'test': OK\n  silver tumours: its contract \(not ingested yet\)\n"
                     r"  gold: 33 columns\n  labels: the gold table\n  performance windows: none \(overall figures "
                     r"only\)\n  \d+ column references checked", run.stdout), run.stdout[-2000:]


def test_the_notebooks_work_for_a_regressor_and_for_data_without_time(seattle, tumours):
    """The four notebooks on the regression's lakehouse; the two that depend on time (exploring, monitoring) on
    the classification without time. Each runs on the conf folder of its dataset (CONF_DIR)."""
    from tests.test_notebooks import plots_and_errors, run_notebooks

    def values(ran, **extra):
        return {"ENV": "test", "LAKEHOUSE_ROOT": None, "CONF_DIR": str(Path(ran["settings"].project_root) / "conf"),
                **extra}

    runs = {
        "seattle": run_notebooks({
            "01_explore_data": values(seattle, STAGE_DEMO_DATA=False, SAMPLE_EVERY=1, PLOT_ROWS=2000),
            "02_train_and_tune": values(seattle, SEARCH={}, PARAMS={}, PROMOTE="gate"),
            "03_evaluate_and_compare": values(seattle, CHALLENGER_PARAMS={"max_depth": 2, "n_estimators": 20}),
            "04_score_and_monitor": values(seattle)}),
        "tumours": run_notebooks({
            "01_explore_data": values(tumours, STAGE_DEMO_DATA=False, SAMPLE_EVERY=1, PLOT_ROWS=2000),
            "04_score_and_monitor": values(tumours)}),
    }
    expected = {"seattle": {"01_explore_data": 4, "02_train_and_tune": 1, "03_evaluate_and_compare": 2,
                            "04_score_and_monitor": 3},
                "tumours": {"01_explore_data": 3, "04_score_and_monitor": 2}}
    for dataset, notebooks in runs.items():
        for name, nb in notebooks.items():
            plots, errors = plots_and_errors(nb)
            assert not errors, (dataset, name, errors[:1])
            assert plots >= expected[dataset][name], (dataset, name, plots)
    texts = "\n".join(o.get("text", "") for c in runs["tumours"]["04_score_and_monitor"].cells
                      if c.cell_type == "code" for o in c.outputs if o.output_type == "stream")
    assert "no time windows (overall figures only)" in texts
