"""Training: checks before any Spark job, the registry gate, and what a run leaves in MLflow."""

import random

import pytest

from lakeforge.config import FeatureSettings, SearchSettings, SplitSettings
from lakeforge.models.registry import mlflow_client
from lakeforge.train import train_model
from lakeforge.train.checks import TrainingConfigError, check_cluster, resolve_device, validate_params
from lakeforge.train.gate import decide
from tests.conftest import settings_for
from tests.support.toy import FEATURES


def test_unknown_removed_and_out_of_range_params_are_named_with_the_fix():
    with pytest.raises(TrainingConfigError) as err:
        validate_params({"max_dept": 3, "use_gpu": True, "learning_rate": 0, "tree_method": "gpu_hist",
                         "n_estimators": 2.5, "scale_pos_weight": "x"})
    assert str(err.value).splitlines() == [
        "model.params.max_dept: not an XGBoost parameter; did you mean max_depth?",
        "model.params.use_gpu: removed from xgboost; set model.device: cuda",
        "model.params.learning_rate: expected a number in (0, 1], got 0",
        "model.params.tree_method: expected one of hist, approx, exact, auto, got 'gpu_hist'",
        "model.params.n_estimators: expected an integer in [1, inf), got 2.5",
        "model.params.scale_pos_weight: expected a positive number or 'auto' (negatives / positives of the training "
        "split), got 'x'",
    ]


def test_the_demo_params_are_valid():
    validate_params(settings_for_demo().model.params)


def settings_for_demo():
    from lakeforge.config import load_settings
    from tests.conftest import ROOT
    return load_settings("local", ROOT / "conf")


def test_cuda_without_a_gpu_fails_early_unless_falling_back():
    with pytest.raises(TrainingConfigError) as err:
        resolve_device("cuda", fallback_to_cpu=False, gpu_available=False)
    assert str(err.value) == ("model.device is cuda but no GPU is visible on this machine (NVML and nvidia-smi find "
                              "none); set model.device: cpu, or model.fallback_to_cpu: true to train on CPU instead")
    assert resolve_device("cuda", fallback_to_cpu=True, gpu_available=False) == "cpu"
    assert resolve_device("cuda", fallback_to_cpu=False, gpu_available=True) == "cuda"


def test_more_workers_than_task_slots_fails_before_training(spark):
    with pytest.raises(TrainingConfigError) as err:
        check_cluster(spark, num_workers=3)
    assert str(err.value) == ("model.num_workers is 3, but the cluster has 2 task slot(s) and a barrier stage needs all "
                              "workers at once; lower model.num_workers to at most 2 or add executors")
    check_cluster(spark, num_workers=2)


@pytest.mark.parametrize("auc, champion_auc, promote, promoted", [
    (0.70, None, "gate", True),      # first model over the floor
    (0.60, None, "gate", False),     # below the floor
    (0.72, 0.70, "gate", True),      # beats the champion by the margin
    (0.705, 0.70, "gate", False),    # better, but not by the margin
    (0.60, 0.70, "always", True),
    (0.90, 0.70, "never", False),
])
def test_gate_rule(auc, champion_auc, promote, promoted):
    model = settings_for_demo().model.model_copy(update={"min_auc": 0.65, "min_improvement": 0.01})
    assert decide(2, auc, 1 if champion_auc else None, champion_auc, model, promote).promoted is promoted


def _settings(tmp_path, min_auc=0.7, searched=False, **params):
    """A small model on the toy data; no search (a search of conf/local.yaml's 8 trials) unless ``searched``."""
    base = settings_for(tmp_path)
    model = base.model.model_copy(update={"min_auc": min_auc, "registered_name": "toy_model",
                                          "params": {"n_estimators": 40, "max_depth": 4, "learning_rate": 0.3, **params}})
    if not searched:
        model = model.model_copy(update={"search": SearchSettings(strategy="none")})
    return base.model_copy(update={"features": FEATURES, "model": model})


def test_a_worse_challenger_is_not_promoted(spark, toy_gold, tmp_path):
    good = train_model(spark, _settings(tmp_path), toy_gold)
    assert good.champion and good.metrics["auc"] > 0.85
    assert good.decision["reason"].startswith("no champion yet")

    worse = train_model(spark, _settings(tmp_path, min_auc=0.3, n_estimators=1, max_depth=1), toy_gold)
    assert not worse.champion
    assert worse.decision["champion_version"] == good.model_version
    assert worse.decision["champion_score"] == pytest.approx(good.metrics["auc"], abs=1e-9)
    assert "does not beat champion" in worse.decision["reason"]
    client = mlflow_client(_settings(tmp_path).mlflow)
    assert int(client.get_model_version_by_alias("toy_model", "champion").version) == good.model_version
    assert int(client.get_model_version_by_alias("toy_model", "challenger").version) == worse.model_version

    forced = train_model(spark, _settings(tmp_path, n_estimators=2, max_depth=1), toy_gold, promote="always")
    assert forced.champion
    assert int(client.get_model_version_by_alias("toy_model", "champion").version) == forced.model_version


def test_a_run_logs_evaluation_artifacts_and_balance(spark, toy_gold, tmp_path):
    result = train_model(spark, _settings(tmp_path, scale_pos_weight="auto"), toy_gold)
    client = mlflow_client(_settings(tmp_path).mlflow)
    files = {a.path for a in client.list_artifacts(result.run_id, "evaluation")}
    assert files == {f"evaluation/{n}" for n in ("roc_curve.png", "pr_curve.png", "calibration_curve.png",
                                                 "confusion_matrix.png", "feature_importance.png", "metrics.json")}
    run = client.get_run(result.run_id)
    assert 0.3 < run.data.metrics["train_positive_rate"] < 0.7
    assert float(run.data.params["scale_pos_weight"]) == pytest.approx(
        (1 - run.data.metrics["train_positive_rate"]) / run.data.metrics["train_positive_rate"], rel=1e-6)
    assert {a.path for a in client.list_artifacts(result.run_id)} >= {"registry_gate.json", "model", "evaluation"}
    # The run is named after the job, model and data version; its training data is an MLflow dataset input.
    assert run.info.run_name == f"train toy_model on toy@v{toy_gold.version}"
    (dataset,) = [d.dataset for d in run.inputs.dataset_inputs]
    assert dataset.name == f"toy@v{toy_gold.version}" and dataset.source_type == "delta_table"
    assert toy_gold.path in dataset.source
    # Model and version say what they are in the registry.
    described = client.get_model_version("toy_model", str(result.model_version)).description
    assert described.startswith(f"Trained on {toy_gold.path} at Delta version {toy_gold.version} ")
    assert f"auc {result.metrics['auc']:.4f}" in described and "Gate: " in described
    assert client.get_registered_model("toy_model").description.startswith("lakeforge classification model (xgboost)")


def _search_settings(tmp_path, strategy, parallelism=1, max_evals=4, engine="hyperopt"):
    settings = _settings(tmp_path)
    search = SearchSettings(engine=engine, strategy=strategy, max_evals=max_evals, parallelism=parallelism,
                            sample_rows=1500,
                            space={"max_depth": {"quniform": [2, 6, 1]}, "learning_rate": {"loguniform": [0.05, 0.5]},
                                   "n_estimators": {"choice": [10, 30]}})
    return settings.model_copy(update={"model": settings.model.model_copy(update={"search": search})})


@pytest.mark.parametrize("engine", ["hyperopt", "optuna"])
def test_parallel_search_logs_a_nested_run_per_trial_and_is_reproducible(spark, toy_gold, tmp_path, engine):
    first = train_model(spark, _search_settings(tmp_path / "a", "parallel", engine=engine), toy_gold)
    again = train_model(spark, _search_settings(tmp_path / "b", "parallel", engine=engine), toy_gold)
    client_a = mlflow_client(_settings(tmp_path / "a").mlflow)
    parent = client_a.get_run(first.run_id)
    children = client_a.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{first.run_id}'")
    assert len(children) == 4 == parent.data.metrics["search_trials"]
    assert all("validation_auc" in c.data.metrics and "max_depth" in c.data.params for c in children)
    assert {c.data.params["engine"] for c in children} == {engine} == {parent.data.tags["search_engine"]}
    best = max(c.data.metrics["validation_auc"] for c in children)
    assert parent.data.metrics["search_best_validation_auc"] == pytest.approx(best)
    params_a = {k: v for k, v in parent.data.params.items() if k in ("max_depth", "learning_rate", "n_estimators")}
    parent_b = mlflow_client(_settings(tmp_path / "b").mlflow).get_run(again.run_id)
    assert params_a == {k: v for k, v in parent_b.data.params.items() if k in params_a}
    assert first.metrics["auc"] > 0.8
    if engine == "optuna":  # the study is named after the model, data version and config: a rerun continues it
        assert parent.data.tags["search_study"].startswith("toy_model-v0-")
        assert (tmp_path / "a" / "lakehouse" / "search" / "optuna.db").is_file()
        rerun = train_model(spark, _search_settings(tmp_path / "a", "parallel", engine=engine), toy_gold, force=True)
        rerun_run = client_a.get_run(rerun.run_id)
        assert rerun_run.data.tags["search_study"] == parent.data.tags["search_study"]
        assert rerun_run.data.metrics["search_new_trials"] == 0 and rerun_run.data.metrics["search_trials"] == 4
        assert {k: v for k, v in rerun_run.data.params.items() if k in params_a} == params_a


@pytest.mark.parametrize("engine", ["hyperopt", "optuna"])
def test_distributed_search_fits_xgboost_spark_per_trial(spark, toy_gold, tmp_path, engine):
    result = train_model(spark, _search_settings(tmp_path, "distributed", max_evals=2, engine=engine), toy_gold)
    run = mlflow_client(_settings(tmp_path).mlflow).get_run(result.run_id)
    assert run.data.metrics["search_trials"] == 2 and run.data.tags["search_strategy"] == "distributed"
    assert run.data.tags["search_engine"] == engine


def test_search_space_shape_is_checked():
    from pydantic import ValidationError

    from lakeforge.config import SearchSettings
    with pytest.raises(ValidationError, match=r"space.max_depth.quniform: expected 3 values, got \[2, 6\]"):
        SearchSettings(space={"max_depth": {"quniform": [2, 6]}})
    with pytest.raises(ValidationError, match=r"space.eta: give exactly one of choice, uniform, loguniform"):
        SearchSettings(space={"eta": {"normal": [0, 1]}})


def test_tracking_and_registry_against_a_real_mlflow_server(spark, toy_gold, tmp_path, mlflow_server):
    from lakeforge.config import MlflowSettings

    url, root = mlflow_server
    settings = _settings(tmp_path, searched=True)  # the search's nested runs tracked against the server too
    settings = settings.model_copy(update={"mlflow": MlflowSettings(tracking_uri=url, experiment="remote-tests")})
    result = train_model(spark, settings, toy_gold)
    client = mlflow_client(settings.mlflow)
    assert client.get_run(result.run_id).data.metrics["holdout_auc"] == pytest.approx(result.metrics["auc"])
    assert int(client.get_model_version_by_alias("toy_model", "champion").version) == result.model_version
    assert {a.path for a in client.list_artifacts(result.run_id, "evaluation")} >= {"evaluation/roc_curve.png"}
    stored = list((root / "artifacts").rglob("roc_curve.png"))
    assert len(stored) == 1  # uploaded through the server into its artifact destination


def test_two_worker_fit_on_a_local_cluster():
    """A real multi-process cluster: two executor JVMs, a barrier stage of two xgboost workers."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'lib'}:{ROOT}", PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "support" / "cluster_fit.py"), str(ROOT / ".cache" / "jars")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["master"] == "local-cluster[2,1,1024]" and result["executors"] == 2
    assert result["auc"] > 0.85


def test_no_training_metric_is_evaluated_without_an_evaluation_set_and_the_trees_stay_the_same(spark):
    import json

    from lakeforge.config import ModelSettings
    from lakeforge.train.estimator import build_pipeline
    rng = random.Random(3)
    rows = [(rng.choice("ab"), x, float(x + rng.gauss(0, 0.3) > 0)) for x in (rng.uniform(-1, 1) for _ in range(400))]
    frame = spark.createDataFrame(rows, "c string, x double, label double")
    features = FeatureSettings(table="toy", base="toy", label="label", categorical=("c",), numeric=("x",),
                               split=SplitSettings(kind="stratified"))
    params = {"n_estimators": 5, "max_depth": 2}
    model = ModelSettings(registered_name="toy", num_workers=1, params=params)

    def fit(params):
        fitted = build_pipeline(features, model, params=params).fit(frame).stages[-1]
        return fitted, json.loads(fitted.get_booster().save_config())["learner"]["learner_train_param"]

    quiet, quiet_config = fit(params)
    assert quiet_config["disable_default_eval_metric"] == "1"
    assert quiet.training_summary.train_objective_history == {}
    evaluated, evaluated_config = fit({**params, "eval_metric": "logloss"})  # a metric asked for is kept
    assert evaluated_config["disable_default_eval_metric"] == "0"
    assert len(evaluated.training_summary.train_objective_history["logloss"]) == 5
    assert quiet.get_booster().get_dump() == evaluated.get_booster().get_dump()
