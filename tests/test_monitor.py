"""Monitoring: the statistics against scipy / sklearn, then one small model trained, scored and monitored for a
steady batch and for a batch with shifted features (real Spark, Delta, MLflow; a real local webhook server)."""

import bisect
import contextlib
import datetime as dt
import importlib.util
import io
import json
import logging
import math
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from pyspark.sql import functions as F
from scipy.stats import chi2_contingency, ks_2samp
from sklearn.metrics import average_precision_score, roc_auc_score

from lakeforge import cli
from lakeforge.config import (ColumnSpec, FeatureSettings, MonitorSettings, MonitorThresholds, SourceSpec,
                              SplitSettings, Threshold)
from lakeforge.tables import GoldTable
from lakeforge.monitor import EPSILON, drift_between, monitor_drift, population_stability_index
from lakeforge.monitor import alerts as alerts_module
from lakeforge.monitor.alerts import post_webhook
from lakeforge.models.profile import PROFILE_ARTIFACT, bin_index
from lakeforge.monitor.stats import merge_bins, status
from lakeforge.score import score_table
from lakeforge.train import train_model
from lakeforge.models.registry import mlflow_client
from tests.conftest import ROOT, settings_for

MONITOR = MonitorSettings()


def test_psi_of_identical_distributions_is_zero():
    assert population_stability_index({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0


def test_psi_matches_the_formula():
    expected, actual = {"a": 0.6, "b": 0.4}, {"a": 0.3, "b": 0.7}
    by_hand = (0.3 - 0.6) * math.log(0.3 / 0.6) + (0.7 - 0.4) * math.log(0.7 / 0.4)
    assert population_stability_index(expected, actual) == pytest.approx(by_hand)


def test_psi_floors_empty_bins():
    value = population_stability_index({"a": 1.0}, {"b": 1.0})
    assert value == pytest.approx(2 * (1.0 - EPSILON) * math.log(1.0 / EPSILON))


def test_fine_bins_merge_into_the_psi_bins():
    # fine edges 1..5: bins (<1) [1,2) [2,3) [3,4) [4,5) (>=5); PSI edges 2 and 4
    assert merge_bins([1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6], [2, 4]) == [3, 7, 11]


def test_status_direction_per_metric():
    psi = Threshold(warn=0.1, alert=0.25)
    assert [status("psi", v, psi) for v in (0.09, 0.1, 0.2499, 0.25)] == ["ok", "warn", "warn", "alert"]
    p = Threshold(warn=0.01, alert=0.001)
    assert [status("chi2_p_value", v, p) for v in (0.5, 0.009, 0.0009)] == ["ok", "warn", "alert"]
    auc = Threshold(warn=0.65, alert=0.6)
    assert [status("auc", v, auc) for v in (0.7, 0.64, 0.59)] == ["ok", "warn", "alert"]
    assert status("prediction_psi", 0.3, psi) == "alert"
    assert status("rows", 1e9, Threshold()) == "info"


def test_thresholds_are_validated():
    with pytest.raises(ValidationError, match=r"psi: high values are bad, so warn \(0.3\) must be <= alert \(0.2\)"):
        MonitorThresholds(psi=Threshold(warn=0.3, alert=0.2))
    with pytest.raises(ValidationError, match=r"auc: low values are bad, so warn \(0.5\) must be >= alert \(0.6\)"):
        MonitorThresholds(auc=Threshold(warn=0.5, alert=0.6))
    with pytest.raises(ValidationError, match=r"feature_thresholds.temp.chi2_p_value: levels must lie in \[0, 1\]"):
        MonitorSettings(feature_thresholds={"temp": {"chi2_p_value": {"alert": 2}}})
    with pytest.raises(ValidationError, match="feature_thresholds.temp"):
        MonitorSettings(feature_thresholds={"temp": {"kss": {"alert": 0.2}}})
    with pytest.raises(ValidationError, match=r"ks_bins \(100\) must be a multiple of bins \(7\)"):
        MonitorSettings(bins=7)
    settings = MonitorSettings(feature_thresholds={"precip": {"psi": {"warn": 0.2, "alert": 0.5}}})
    assert settings.threshold("psi", "precip") == Threshold(warn=0.2, alert=0.5)
    assert settings.threshold("psi", "temp") == Threshold(warn=0.1, alert=0.25)


def test_bin_index_counts_the_edges_at_or_below_each_value(spark):
    rng = random.Random(3)
    # edges as the quantiles can give them: any double, exactly (0.1 + 0.2 is not 0.3), and infinity
    edges = sorted({round(rng.uniform(-5, 5), 2) for _ in range(37)} | {0.1 + 0.2, 1e-300, float("inf")})
    values = [rng.uniform(-6, 6) for _ in range(300)] + edges + [-1e9, 1e9, 0.3, 0.0, float("-inf")]
    frame = spark.createDataFrame([(v,) for v in values], "v double")
    got = [r[0] for r in frame.select(bin_index("v", edges)).collect()]
    assert got == [bisect.bisect_right(edges, v) for v in values]


def test_ks_and_chi_square_match_scipy(spark):
    rng = np.random.default_rng(5)
    n = 3000
    base = pd.DataFrame({"x": rng.normal(0, 1, n), "hour": rng.integers(5, 23, n).astype(float),
                         "c": rng.choice(list("abcde"), n, p=[0.4, 0.3, 0.15, 0.1, 0.05])})
    cur = pd.DataFrame({"x": rng.normal(0.3, 1.2, n), "hour": rng.integers(8, 23, n).astype(float),
                        "c": rng.choice(list("abcdef"), n, p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.05])})
    drift = drift_between(spark.createDataFrame(base), spark.createDataFrame(cur), ["c"], ["x", "hour"], MONITOR)

    for column in ("x", "hour"):
        exact = ks_2samp(base[column], cur[column]).statistic
        approx, bound = drift[column].metrics["ks"], drift[column].metrics["ks_error_bound"]
        assert approx <= exact + 1e-12 and exact - approx <= bound, column
    assert drift["x"].metrics["ks"] == pytest.approx(ks_2samp(base.x, cur.x).statistic, abs=0.01)
    # an integer-valued column: every value is a fine edge, so the statistic is exact
    assert drift["hour"].metrics["ks"] == pytest.approx(ks_2samp(base.hour, cur.hour).statistic, abs=1e-12)

    # 'f' never occurs in the baseline: it is counted as __other__, as in this contingency table
    table = pd.crosstab(pd.concat([base.c, cur.c.replace("f", "__other__")]), [0] * n + [1] * n)
    statistic, p_value, _, _ = chi2_contingency(table.T.to_numpy(), correction=False)
    assert drift["c"].metrics["chi2_statistic"] == pytest.approx(statistic, rel=1e-9)
    assert drift["c"].metrics["chi2_p_value"] == pytest.approx(p_value, rel=1e-6, abs=1e-300)
    assert drift["c"].bin_labels == ["a", "b", "c", "d", "e", "__other__"]


def test_null_rate_change_is_measured_apart_from_the_value_distribution(spark):
    rng = random.Random(9)
    base = spark.createDataFrame([(rng.uniform(0, 100),) for _ in range(2000)], "humid double")
    values = [rng.uniform(0, 100) for _ in range(2000)]
    cur = spark.createDataFrame([(None if i % 10 < 3 else v,) for i, v in enumerate(values)], "humid double")
    metrics = drift_between(base, cur, [], ["humid"], MONITOR)["humid"].metrics
    assert (metrics["baseline_null_rate"], metrics["null_rate"]) == (0.0, 0.3)
    assert metrics["null_rate_delta"] == pytest.approx(0.3)
    assert metrics["psi"] < 0.05 and metrics["ks"] < 0.06


def test_top_categories_pool_the_rest_as_other(spark):
    rows = [("a",)] * 50 + [("b",)] * 30 + [("c",)] * 15 + [("d",)] * 5 + [(None,)] * 10
    frame = spark.createDataFrame(rows, "c string")
    drift = drift_between(frame, frame, ["c"], [], MONITOR.model_copy(update={"top_categories": 2}))["c"]
    assert drift.bin_labels == ["a", "b", "__other__"]
    assert drift.baseline_shares == [0.5, 0.3, 0.2]
    assert drift.metrics["null_rate"] == pytest.approx(10 / 110)


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append(body)
        code = self.server.codes.pop(0) if self.server.codes else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def webhook_server(codes=()):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received, server.codes = [], list(codes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_retries_once_then_gives_up_with_an_error_log(monkeypatch, caplog):
    monkeypatch.setattr(alerts_module, "RETRY_DELAY_SECONDS", 0.0)
    caplog.set_level(logging.ERROR, logger="lakeforge.monitor.alerts")
    with webhook_server(codes=[500]) as (server, url):
        assert post_webhook(url, {"a": 1}, timeout=5) is True
        assert server.received == [{"a": 1}, {"a": 1}]
    assert caplog.messages == [f"monitoring webhook {url} failed on attempt 1/2: HTTP 500"]
    caplog.clear()
    with webhook_server(codes=[503, 500]) as (server, url):
        assert post_webhook(url, {"a": 1}, timeout=5) is False
        assert len(server.received) == 2
    assert [m.split(": ", 1)[1] for m in caplog.messages] == ["HTTP 503", "HTTP 500"]
    caplog.clear()
    assert post_webhook(url, {"a": 1}, timeout=5) is False  # the server is gone: connection refused, twice
    assert len(caplog.messages) == 2 and all("ConnectionRefusedError" in m or "Connection refused" in m
                                             for m in caplog.messages)


# --- a small model, scored and monitored ----------------------------------------------------------------------

FEATURES = FeatureSettings(
    table="toy_flights", base="toy_flights", label="is_delayed", categorical=("carrier", "origin"),
    numeric=("temp", "distance", "humid"), split=SplitSettings(column="flight_date", test_from="2024-03-01"),
)
SCHEMA = "id long, carrier string, origin string, temp double, distance double, humid double, flight_date date"
CARRIERS, ORIGINS = ["AA", "B6", "DL", "UA"], ["EWR", "JFK", "LGA"]


def _flights(seed, ids, first_day, days, temp_mean=60.0, carriers=CARRIERS, weights=None, humid_nulls=0.0):
    """Rows of SCHEMA plus their label: delays depend on temperature, carrier and distance."""
    rng = random.Random(seed)
    rows, labels = [], []
    for i in ids:
        carrier = rng.choices(carriers, weights)[0]
        temp, distance = rng.gauss(temp_mean, 10), rng.uniform(100, 2500)
        humid = None if rng.random() < humid_nulls else rng.uniform(20, 100)
        logit = 0.12 * (temp - 60) + (1.0 if carrier in ("UA", "WN") else -0.5) + 0.0006 * (distance - 1300)
        day = first_day + dt.timedelta(days=i % days)
        rows.append((i, carrier, rng.choice(ORIGINS), temp, distance, humid, day))
        labels.append((i, int(rng.random() < 1 / (1 + math.exp(-logit))), day))
    return rows, labels


def _save(spark, rows, schema, path, mode="overwrite"):
    spark.createDataFrame(rows, schema).write.format("delta").mode(mode).save(path)
    return path


def _load_job():
    spec = importlib.util.spec_from_file_location("monitor_job", ROOT / "jobs" / "monitor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_job(spark, settings):
    """jobs/monitor.py's main with this test's settings and session (which the job must not stop)."""
    job = _load_job()

    class Builder:
        def getOrCreate(self):  # noqa: N802 - Spark's name
            return spark

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(cli, "load_settings", lambda env, conf_dir: settings)
        mp.setattr(cli, "lakeforge_builder", lambda spark_settings, master: Builder())
        mp.setattr(spark, "stop", lambda: None)
        code = job.main(["--env", "local"])
    return code, json.loads(out.getvalue().strip().splitlines()[-1])


class _Alerts(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def monitored(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitor")
    lake = tmp / "lakehouse"
    base = settings_for(tmp)
    gold_rows, gold_labels = _flights(1, range(3000), dt.date(2024, 1, 1), 91)
    gold = _save(spark, [(*r, lab) for r, (_, lab, _) in zip(gold_rows, gold_labels)], SCHEMA + ", is_delayed int",
                 str(lake / "gold" / "toy_flights"))
    steady_rows, steady_labels = _flights(2, range(10_000, 12_000), dt.date(2024, 4, 1), 61)
    # the shift the issue names: one carrier's share tripled (UA: 1/4 -> 3/4), temperatures +8, humid 30% null
    shifted_rows, shifted_labels = _flights(3, range(20_000, 22_000), dt.date(2024, 6, 1), 30, temp_mean=68.0,
                                            weights=[1, 1, 1, 9], humid_nulls=0.3)
    # score_table reads the label column: the batches carry it, not yet known (null)
    unlabelled = SCHEMA + ", is_delayed int"
    steady = _save(spark, [(*r, None) for r in steady_rows], unlabelled, str(lake / "silver" / "steady"))
    shifted = _save(spark, [(*r, None) for r in shifted_rows], unlabelled, str(lake / "silver" / "shifted"))
    labels_path = str(lake / "silver" / "labels")
    _save(spark, [(i, None, d) for i, _, d in steady_labels], "id long, is_delayed int, flight_date date", labels_path)

    with webhook_server() as (server, url):
        declared = [(c.split()[0], c.split()[1]) for c in (SCHEMA + ", is_delayed int").split(", ")]
        source = SourceSpec(name="toy_flights", kind="delta", path="toy", primary_key=("id",),
                            columns=tuple(ColumnSpec(name=n, type="bigint" if t == "long" else t) for n, t in declared))
        performance = base.monitor.performance.model_copy(update={"labels_table": labels_path, "min_rows": 50})
        settings = base.model_copy(update={
            "features": FEATURES, "sources": {"toy_flights": source},
            "model": base.model.model_copy(update={
                "registered_name": "toy_delay", "min_auc": 0.5, "search": base.model.search.model_copy(update={"strategy": "none"}),
                "params": {"n_estimators": 20, "max_depth": 3, "learning_rate": 0.3}}),
            "monitor": base.monitor.model_copy(update={"performance": performance, "webhook_url": url}),
        })
        trained = train_model(spark, settings, GoldTable(gold, 0, 3000, True, {}))
        handler = _Alerts()
        logging.getLogger("lakeforge.monitor.alerts").addHandler(handler)
        try:
            scored_steady = score_table(spark, settings, input_path=steady)
            before_labels = monitor_drift(spark, settings, scored_steady)
            rows_before = spark.read.format("delta").load(before_labels.table).count()
            _save(spark, steady_labels + shifted_labels, "id long, is_delayed int, flight_date date", labels_path)
            steady_code, steady_out = _run_job(spark, settings)  # reruns the steady batch, now with labels
            webhook_calls_after_steady = len(server.received)
            scored_shifted = score_table(spark, settings, input_path=shifted)
            shifted_code, shifted_out = _run_job(spark, settings)
        finally:
            logging.getLogger("lakeforge.monitor.alerts").removeHandler(handler)
        received = list(server.received)
    return {"settings": settings, "trained": trained, "before_labels": before_labels, "rows_before": rows_before,
            "steady": (steady_code, steady_out, scored_steady), "shifted": (shifted_code, shifted_out, scored_shifted),
            "webhook_calls_after_steady": webhook_calls_after_steady, "received": received, "shifted_rows": shifted_rows,
            "alert_lines": handler.lines}


def _metrics(spark, result):
    return (spark.read.format("delta").load(result["table"]).where(F.col("batch_id") == result["batch_id"])
            .toPandas())


def test_training_logs_the_baseline_profile(monitored):
    settings, trained = monitored["settings"], monitored["trained"]
    client = mlflow_client(settings.mlflow)
    import mlflow
    profile = mlflow.artifacts.load_dict(f"runs:/{trained.run_id}/{PROFILE_ARTIFACT}")
    assert list(profile["features"]) == list(FEATURES.feature_columns)
    train_rows = int(client.get_run(trained.run_id).data.metrics["train_rows"])
    assert profile["rows"] == train_rows == sum(profile["prediction"]["fine_counts"])
    assert profile["features"]["carrier"]["categories"][-1] == "__other__"
    assert sum(profile["features"]["carrier"]["counts"]) == train_rows
    temp = profile["features"]["temp"]
    assert len(temp["fine_edges"]) == 99 and set(temp["psi_edges"]) <= set(temp["fine_edges"])
    assert len(temp["psi_edges"]) == 9 and temp["null_rate"] == 0.0


def test_the_steady_batch_raises_nothing_and_the_job_exits_0(monitored):
    code, out, _ = monitored["steady"]
    assert code == 0
    assert [a for a in out["alerts"]] == []
    assert monitored["webhook_calls_after_steady"] == 0


def test_exactly_the_shifted_features_alert_and_the_job_exits_3(spark, monitored):
    code, out, _ = monitored["shifted"]
    assert code == 3
    feature_alerts = {(a["feature"], a["metric"]) for a in out["alerts"] if a["kind"] in ("numeric", "categorical")}
    assert feature_alerts == {("temp", "psi"), ("temp", "ks"), ("carrier", "psi"), ("carrier", "js_distance"),
                              ("humid", "null_rate_delta")}
    # nothing else moved: the unshifted features raise not even a warning
    assert {a["feature"] for a in out["warnings"] if a["kind"] in ("numeric", "categorical")} <= {"temp", "carrier", "humid"}
    assert {("probability", "psi"), ("probability", "ks")} <= {(a["feature"], a["metric"]) for a in out["alerts"]}
    rows = _metrics(spark, out)
    humid = rows[(rows.feature == "humid") & (rows.metric == "null_rate")].value.item()
    assert humid == sum(r[5] is None for r in monitored["shifted_rows"]) / 2000


def test_rerunning_a_batch_replaces_its_rows(spark, monitored):
    before = monitored["before_labels"]
    _, steady, _ = monitored["steady"]
    assert steady["batch_id"] == before.batch_id
    rows = _metrics(spark, steady)
    assert len(rows) == steady["rows_written"] > before.rows_written  # the rerun added the performance rows
    assert not rows.duplicated(["feature", "metric", "window_start"]).any()
    assert set(rows[rows.kind == "performance"].window_start.dropna().astype(str)) == {"2024-04-01", "2024-05-01"}
    assert before.windows == 0 and monitored["rows_before"] == before.rows_written  # no labels yet, no performance


def test_realised_performance_per_window_matches_sklearn(spark, monitored):
    settings = monitored["settings"]
    _, steady, scored = monitored["steady"]
    # scoring the shifted batch replaced these predictions (replaceWhere model_version): read the steady version
    predictions = (spark.read.format("delta").option("versionAsOf", scored.table_version).load(scored.table)
                   .select("id", "probability").toPandas())
    assert len(predictions) == 2000
    labels = spark.read.format("delta").load(settings.monitor.performance.labels_table).toPandas()
    joined = predictions.merge(labels, on="id")
    joined["window"] = pd.to_datetime(joined.flight_date).dt.to_period("M").dt.start_time.dt.date.astype(str)
    rows = _metrics(spark, steady)
    perf = rows[rows.kind == "performance"]
    assert set(perf.feature) == {"is_delayed"}
    for window, group in [*joined.groupby("window"), ("all", joined)]:
        at = perf[perf.window_start.isna()] if window == "all" else perf[perf.window_start.astype(str) == window]
        value = dict(zip(at.metric, at.value))
        y, p = group.is_delayed.to_numpy(), group.probability.to_numpy()
        assert value["labelled_rows"] == len(group)
        assert value["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert value["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
        bins = np.minimum((p * 10).astype(int), 9)
        ece = sum(abs(p[bins == b].sum() - y[bins == b].sum()) for b in range(10)) / len(y)
        assert value["calibration_error"] == pytest.approx(ece, abs=1e-12)
        assert value["observed_rate"] == pytest.approx(y.mean(), abs=1e-12)
    assert {s for s in perf[perf.metric == "auc"].status} <= {"ok", "warn"}


def test_alert_is_logged_and_posted_with_the_exact_payload(spark, monitored):
    _, out, _ = monitored["shifted"]
    rows = _metrics(spark, out).sort_values(["kind", "feature", "metric", "window_start"], na_position="first")
    alerts = rows[rows.status == "alert"]
    expected = {
        "event": "lakeforge_monitoring_alert", "model_name": "toy_delay", "model_version": out["model_version"],
        "batch_id": out["batch_id"], "source_table": out["source_table"], "source_version": out["source_version"],
        "alerts": [{"kind": r.kind, "feature": r.feature, "metric": r.metric,
                    "window_start": None if pd.isna(r.window_start) else str(r.window_start),
                    "value": r.value, "threshold": r.threshold} for r in alerts.itertuples()],
    }
    received = monitored["received"]
    assert len(received) == 1
    by_key = sorted(received[0]["alerts"], key=lambda a: (a["kind"], a["feature"], a["metric"], a["window_start"] or ""))
    assert {**received[0], "alerts": by_key} == expected
    logged = [json.loads(line) for line in monitored["alert_lines"]]
    assert logged == received


def test_the_html_report_is_self_contained_and_names_every_feature(spark, monitored):
    _, out, _ = monitored["shifted"]
    path = out["report_path"]
    assert path.startswith(str(monitored["settings"].storage.root)) and "/monitoring/reports/toy_delay/v" in path
    page = open(path, encoding="utf-8").read()
    assert "href=" not in page and "url(" not in page
    sources = [part.split('"', 1)[0] for part in page.split('src="')[1:]]
    assert len(sources) == len(FEATURES.feature_columns) + 2  # a plot per feature, the predictions, the trend
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    for name in (*FEATURES.feature_columns, "probability"):
        assert f"<h3>{name} " in page
    client = mlflow_client(monitored["settings"].mlflow)
    run = client.get_run(out["mlflow_run_id"])
    assert run.data.tags["model_version"] == str(out["model_version"])
    assert run.data.tags["source_version"] == str(out["source_version"])
    assert run.data.metrics["numeric/temp/psi"] == pytest.approx(
        _metrics(spark, out).query("feature == 'temp' and metric == 'psi'").value.item())
    assert {a.path for a in client.list_artifacts(out["mlflow_run_id"], "monitoring")} == {
        "monitoring/report.html", "monitoring/metrics.json"}


def test_a_model_without_a_baseline_profile_is_a_clear_error(tmp_path):
    from lakeforge.models.profile import load_baseline_profile
    from lakeforge.models.registry import ensure_experiment

    settings = settings_for(tmp_path)
    client = mlflow_client(settings.mlflow)
    run = client.create_run(ensure_experiment(client, settings.mlflow))
    with pytest.raises(FileNotFoundError) as err:
        load_baseline_profile(run.info.run_id, "m", 4)
    assert str(err.value) == (f"model m version 4 (run {run.info.run_id}) has no monitoring/baseline_profile.json: it "
                              "was trained before baseline profiles were logged; retrain it (jobs/train.py --force) "
                              "to monitor it")


def test_a_labels_table_without_the_window_column_is_a_clear_error(spark):
    from lakeforge.monitor.performance import labelled_predictions

    predictions = spark.createDataFrame([(1, 0.3)], "id long, probability double")
    labels = spark.createDataFrame([(1, 1)], "id long, is_delayed int")
    with pytest.raises(ValueError) as err:
        labelled_predictions(predictions, labels, ["id"], "is_delayed", "probability", "flight_date", "month",
                             "/lake/gold/x")
    assert str(err.value) == ("labels table /lake/gold/x lacks column(s) ['flight_date'] (it has ['id', 'is_delayed']); "
                              "set monitor.performance.labels_table / label / window_column to a table that has the "
                              "entity key ['id'], the label and the window column (window: none for data without "
                              "time)")
