"""The torch network trained data-parallel on Spark (TorchDistributor and Horovod), scored like the xgboost model."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakeforge.config import DeepSettings
from lakeforge.train import train_model
from lakeforge.train.checks import TrainingConfigError
from lakeforge.train.deep import check_deep
from lakeforge.models.registry import mlflow_client
from tests.conftest import ROOT, settings_for
from tests.support.toy import FEATURES

HOROVOD = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import horovod.torch, horovod.spark"], capture_output=True).returncode != 0,
    reason="horovod is not built here: run `make horovod` (CI does)")


def _deep_settings(tmp_path, backend="torch_distributor", **deep):
    base = settings_for(tmp_path)
    spec = DeepSettings(**{"backend": backend, "num_processes": 2, "hidden_units": 32, "hidden_layers": 2,
                           "embedding_dim": 4, "batch_size": 128, "learning_rate": 0.005, "max_epochs": 6,
                           "patience": 3, **deep})
    model = base.model.model_copy(update={"framework": "torch", "deep": spec, "registered_name": "toy_net",
                                          "min_auc": 0.6})
    return base.model_copy(update={"features": FEATURES, "model": model})


def _epochs(client, run_id, metric):
    return [m.value for m in sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)]


@pytest.mark.parametrize("backend", ["torch_distributor", pytest.param("horovod", marks=HOROVOD)])
def test_two_process_training_learns_identical_weights_and_scores_like_xgboost(spark, toy_gold, tmp_path, backend):
    from lakeforge.score import score_table

    settings = _deep_settings(tmp_path, backend)
    result = train_model(spark, settings, toy_gold)
    client = mlflow_client(settings.mlflow)
    run = client.get_run(result.run_id)
    losses = _epochs(client, result.run_id, "train_loss")
    assert len(losses) >= 3 and losses[-1] < losses[0] * 0.8           # it learns
    assert run.data.metrics["world_size"] == 2
    assert run.data.metrics["ranks_identical_weights"] == 1.0           # both ranks ended with the same weights
    assert run.data.params["backend"] == backend and run.data.tags["framework"] == "torch"
    assert result.metrics["auc"] > 0.8 and result.champion              # the interaction x1*x2 needs the hidden layers
    assert {a.path for a in client.list_artifacts(result.run_id, "monitoring")} == {"monitoring/baseline_profile.json"}
    # the Spark-free serving model (the same network, encodings and weights) agrees with the batch scores
    assert run.data.metrics["serving_parity_max_abs_diff"] <= 1e-6 and run.data.metrics["serving_parity_rows"] > 0
    version = client.get_model_version(settings.model.registered_name, str(result.model_version))
    assert version.tags["serving_model_uri"] == run.data.tags["serving_model_uri"]

    scored = score_table(spark, settings, input_path=toy_gold.path)       # jobs/score.py's library call
    assert scored.model_version == result.model_version and scored.rows_written == toy_gold.rows
    out = spark.read.format("delta").load(scored.table)
    assert out.where("probability < 0 or probability > 1 or probability is null").count() == 0


def test_checks_before_any_job(spark):
    with pytest.raises(TrainingConfigError) as err:
        check_deep(spark, DeepSettings(num_processes=3))
    assert str(err.value) == ("model.deep.num_processes is 3, but the cluster has 2 task slot(s) and a barrier stage "
                              "needs all workers at once; lower model.deep.num_processes to at most 2 or add executors")
    with pytest.raises(TrainingConfigError) as err:
        check_deep(spark, DeepSettings(use_gpu=True), gpu_available=False)
    assert str(err.value) == ("model.deep.use_gpu is true, but no GPU is visible here (nvidia-smi finds none); set "
                              "model.deep.use_gpu: false to train on CPU, or run on a GPU cluster")
    assert check_deep(spark, DeepSettings(num_processes=2)) == 2


def test_a_missing_backend_says_how_to_install_it():
    """horovod made unimportable in a fresh interpreter (``sys.modules[name] = None`` is Python's own way)."""
    code = ("import sys; sys.modules['horovod'] = None\n"
            "from lakeforge.config import DeepSettings\n"
            "from lakeforge.train.deep import check_deep\n"
            "try:\n    check_deep(None, DeepSettings(backend='horovod'))\n"
            "except Exception as e:\n    print(type(e).__name__ + ': ' + str(e))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT / "lib")))
    assert out.stdout.strip() == (
        f"TrainingConfigError: model.deep.backend is horovod, but horovod (with its torch and spark parts) is not "
        f"installed in {sys.executable}; build it with `make horovod` (horovod 0.28.1 from source with gloo, see "
        f"README), or set model.deep.backend: torch_distributor")


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.rglob("epoch-*.pt")) if folder.exists() else []


@pytest.mark.parametrize("backend", ["torch_distributor", pytest.param("horovod", marks=HOROVOD)])
def test_a_killed_run_resumes_from_its_last_checkpoint_on_a_local_cluster(tmp_path, backend):
    """Kill the whole training (driver, executors, torch processes) once an epoch's checkpoint is written; the
    rerun resumes after that epoch and finishes, on a local-cluster master (two executor JVMs)."""
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'lib'}:{ROOT}", PYSPARK_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1")
    command = [sys.executable, str(ROOT / "tests" / "support" / "deep_resume.py"), str(ROOT / ".cache" / "jars"), str(tmp_path),
               "local-cluster[2,1,1024]", backend]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 600
    while not _checkpoints(tmp_path / "checkpoints") and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    _, err = first.communicate(timeout=60)
    saved = _checkpoints(tmp_path / "checkpoints")
    assert saved, f"no checkpoint was written before the run ended:\n{err[-3000:]}"
    killed_after = int(saved[-1].stem.split("-")[1])
    assert killed_after < 4, "the run finished before it could be killed; slow the epochs down"

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    record = json.loads(second.stdout.strip().splitlines()[-1])
    assert record["master"] == "local-cluster[2,1,1024]"
    assert record["metrics"]["resumed_from_epoch"] == killed_after + 1
    assert record["metrics"]["epochs"] == 5                       # the history carries the epochs before the kill
    assert record["metrics"]["ranks_identical_weights"] == 1.0
    assert record["auc"] > 0.8
    assert _checkpoints(tmp_path / "checkpoints") == []           # removed once the model is trained


@pytest.mark.parametrize("engine", ["hyperopt"])  # optuna: the same loop (train.tuning), tested in test_tuning
def test_a_search_over_network_settings_runs_each_trial_distributed(spark, toy_gold, tmp_path, engine):
    from lakeforge.config import SearchSettings

    settings = _deep_settings(tmp_path, max_epochs=3)
    search = SearchSettings(engine=engine, strategy="distributed", max_evals=2, space={
        "learning_rate": {"loguniform": [0.001, 0.01]}, "hidden_units": {"choice": [16, 32]}})
    settings = settings.model_copy(update={"model": settings.model.model_copy(update={"search": search})})
    result = train_model(spark, settings, toy_gold)
    client = mlflow_client(settings.mlflow)
    run = client.get_run(result.run_id)
    trials = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(trials) == 2 == run.data.metrics["search_trials"]
    assert {t.data.params["strategy"] for t in trials} == {"distributed"}
    assert {t.data.params["engine"] for t in trials} == {engine} == {run.data.tags["search_engine"]}
    best = max(trials, key=lambda t: t.data.metrics["validation_auc"])
    assert run.data.metrics["search_best_validation_auc"] == pytest.approx(best.data.metrics["validation_auc"])
    assert int(run.data.params["deep_hidden_units"]) == int(best.data.params["hidden_units"])
    assert float(run.data.params["deep_learning_rate"]) == pytest.approx(float(best.data.params["learning_rate"]))


def test_search_space_keys_must_fit_the_framework():
    from pydantic import ValidationError

    from lakeforge.config import ModelSettings

    with pytest.raises(ValidationError) as err:
        ModelSettings(registered_name="m", framework="torch",
                      search={"strategy": "distributed", "space": {"max_depth": {"quniform": [2, 6, 1]}}})
    assert ("search.space has max_depth, which a torch model does not take; searchable: batch_size, dropout, "
            "embedding_dim, hidden_layers, hidden_units, learning_rate, weight_decay") in str(err.value)
