"""The one search loop (``lakeforge.train.tuning``) with its two engines: results, reproducibility, a study that
survives its driver, and the configuration it refuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import mlflow
import numpy as np
import pytest
from pyspark import cloudpickle

from lakeforge.config import ConfigError, SearchSettings, StorageSettings, load_settings
from lakeforge.errors import InputError
from lakeforge.models.registry import mlflow_client
from lakeforge.train import tuning
from tests.conftest import ROOT, settings_for

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # objectives defined here run on executors

SPACE = {"max_depth": {"quniform": [1, 5, 1]}, "learning_rate": {"loguniform": [0.05, 0.5]},
         "n_estimators": {"choice": [5, 20]}}
INTEGERS = frozenset({"max_depth", "n_estimators"})


def _xor_data(rows: int = 600):
    """Seeded rows whose label is an interaction of two features: depth 1 cannot learn it, depth 2+ can."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, size=(rows, 3))
    y = ((x[:, 0] * x[:, 1] > 0) != (rng.random(rows) < 0.1)).astype(int)
    cut = rows * 3 // 4
    return x[:cut], y[:cut], x[cut:], y[cut:]


def _objective(spark):
    """Validation AUC of single-node xgboost on a broadcast sample, as the parallel strategy scores trials."""
    shared = spark.sparkContext.broadcast(_xor_data())

    def objective(params):
        import xgboost
        from sklearn.metrics import roc_auc_score

        x_fit, y_fit, x_val, y_val = shared.value
        model = xgboost.XGBClassifier(**params, random_state=0, n_jobs=1).fit(x_fit, y_fit)
        return float(roc_auc_score(y_val, model.predict_proba(x_val)[:, 1]))

    return objective


def _settings(engine, max_evals=4, parallelism=2, strategy="parallel", **more):
    return SearchSettings(engine=engine, strategy=strategy, max_evals=max_evals, parallelism=parallelism,
                          space=SPACE, **more)


def _study(tmp_path, name="toy-v0-study"):
    return tuning.Study(f"sqlite:///{tmp_path / 'optuna.db'}", name)


@pytest.mark.parametrize("engine", ["hyperopt", "optuna"])
def test_both_engines_find_a_best_result_and_log_each_trial(spark, tmp_path, engine):
    settings = settings_for(tmp_path)
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    experiment = mlflow.set_experiment("tuning-tests")
    with mlflow.start_run() as parent:
        result = tuning.search(_objective(spark), _settings(engine), seed=7, metric="auc", maximize=True,
                               integers=INTEGERS, spark=spark, study=_study(tmp_path) if engine == "optuna" else None)
    assert (result.engine, result.strategy, result.trials, result.new_trials) == (engine, "parallel", 4, 4)
    assert set(result.best_params) == set(SPACE) and isinstance(result.best_params["max_depth"], int)
    assert 1 <= result.best_params["max_depth"] <= 5 and result.best_params["n_estimators"] in (5, 20)
    assert 0.05 <= result.best_params["learning_rate"] <= 0.5
    assert result.best_validation_score > 0.75
    children = mlflow_client(settings.mlflow).search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 4 and {c.data.tags["search_engine"] for c in children} == {engine}
    assert max(c.data.metrics["validation_auc"] for c in children) == pytest.approx(result.best_validation_score)


def _trials_of(spark, tmp_path, seed):
    """(best params, every trial's params in order) of a parallelism-1 Optuna search in a study of its own."""
    tmp_path.mkdir()
    result = tuning.search(_objective(spark), _settings("optuna", parallelism=1), seed=seed, metric="auc",
                           maximize=True, integers=INTEGERS, spark=spark, study=_study(tmp_path))
    import optuna
    trials = optuna.load_study(study_name=_study(tmp_path).name, storage=_study(tmp_path).storage).trials
    return result.best_params, [t.params for t in trials]


def test_optuna_with_the_same_seed_gives_the_same_trials_and_best_params(spark, tmp_path):
    best_a, trials_a = _trials_of(spark, tmp_path / "a", seed=3)
    best_b, trials_b = _trials_of(spark, tmp_path / "b", seed=3)
    _, trials_c = _trials_of(spark, tmp_path / "c", seed=4)
    assert best_a == best_b and trials_a == trials_b and len(trials_a) == 4
    assert trials_c != trials_a  # the seed does drive the sampler


def test_a_rerun_continues_the_optuna_study(spark, tmp_path):
    place = _study(tmp_path)
    objective = _objective(spark)

    def run(max_evals):
        return tuning.search(objective, _settings("optuna", max_evals=max_evals), seed=7, metric="auc",
                             maximize=True, integers=INTEGERS, spark=spark, study=place)

    first = run(4)
    again = run(4)  # a rerun of the same training: everything is there already
    assert (first.trials, first.new_trials) == (4, 4) and (again.trials, again.new_trials) == (4, 0)
    assert again.best_params == first.best_params
    more = run(6)   # a larger budget continues where the study is, with trials it has not tried
    assert (more.trials, more.new_trials) == (6, 2)
    import optuna
    trials = optuna.load_study(study_name=place.name, storage=place.storage).trials
    assert [t.number for t in trials] == list(range(6))
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6


KILLED_DRIVER = textwrap.dedent("""
    import sys, time
    from lakeforge.config import SearchSettings
    from lakeforge.train import tuning

    def objective(params):
        with open(sys.argv[3], "a") as marks:
            marks.write("started\\n")
        if sum(1 for _ in open(sys.argv[3])) == 2:  # the second trial hangs until the driver is killed
            time.sleep(600)
        return params["x"]

    settings = SearchSettings(engine="optuna", strategy="distributed", max_evals=3, space={"x": {"uniform": [0, 1]}})
    tuning.search(objective, settings, seed=1, metric="auc", maximize=True, study=tuning.Study(sys.argv[1], sys.argv[2]))
""")


def test_trials_left_running_by_a_killed_driver_are_failed_on_resume(tmp_path):
    import optuna
    from optuna.trial import TrialState

    place, marks = _study(tmp_path), tmp_path / "started"
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'lib'}:{os.environ.get('PYTHONPATH', '')}")
    driver = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER, place.storage, place.name, str(marks)], env=env)
    deadline = time.time() + 120
    while not (marks.exists() and len(marks.read_text().splitlines()) == 2):
        assert driver.poll() is None and time.time() < deadline, "the driver never reached its second trial"
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    states = [t.state for t in optuna.load_study(study_name=place.name, storage=place.storage).trials]
    assert states == [TrialState.COMPLETE, TrialState.RUNNING]

    result = tuning.search(lambda params: params["x"], SearchSettings(
        engine="optuna", strategy="distributed", max_evals=3, space={"x": {"uniform": [0, 1]}}),
        seed=1, metric="auc", maximize=True, study=place)
    states = [t.state for t in optuna.load_study(study_name=place.name, storage=place.storage).trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert (result.trials, result.new_trials) == (3, 2)  # the abandoned trial does not count


@pytest.mark.parametrize("root", ["s3a://bucket/lakehouse", "dbfs:/mnt/lakehouse"])
def test_a_remote_root_without_study_storage_names_the_key(tmp_path, root):
    settings = settings_for(tmp_path)
    search = settings.model.search.model_copy(update={"engine": "optuna"})
    settings = settings.model_copy(update={"storage": StorageSettings(root=root, landing=str(tmp_path)),
                                           "model": settings.model.model_copy(update={"search": search})})
    with pytest.raises(InputError) as err:
        tuning.study_for(settings, {"gold_table": f"{root}/gold/t", "gold_version": "3"})
    assert str(err.value) == (f"model.search.engine is optuna and the files location {root} (storage.files, else "
                              "storage.root) is not a local path, where the study's SQLite file cannot live; set model.search.storage to a database URL that every "
                              "driver run reaches (e.g. postgresql://host/optuna or mysql://host/optuna)")
    search = search.model_copy(update={"storage": "postgresql://db/optuna"})
    stored = settings.model_copy(update={"model": settings.model.model_copy(update={"search": search})})
    assert tuning.study_for(stored, {"gold_version": "3"}).storage == "postgresql://db/optuna"


def test_the_study_name_follows_model_data_and_config_but_not_the_budget(tmp_path):
    settings = settings_for(tmp_path)
    data = {"gold_table": "/lake/gold/t", "gold_version": "3"}
    place = tuning.study_for(settings, data)
    assert place.storage == f"sqlite:///{tmp_path / 'lakehouse' / 'search' / 'optuna.db'}"
    assert place.name.startswith(f"{settings.model.registered_name}-v3-")

    def with_search(**update):
        search = settings.model.search.model_copy(update=update)
        return settings.model_copy(update={"model": settings.model.model_copy(update={"search": search})})

    assert tuning.study_for(with_search(max_evals=99, timeout_seconds=5), data).name == place.name
    assert tuning.study_for(with_search(space={"max_depth": {"quniform": [2, 3, 1]}}), data).name != place.name
    assert tuning.study_for(settings, {**data, "gold_version": "4"}).name != place.name


def test_unknown_engine_and_a_storage_that_is_no_url_are_refused(conf_copy):
    import yaml

    path = conf_copy / "base.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["model"]["search"]["engine"] = "foo"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == f"{path}: model.search.engine: Input should be 'hyperopt' or 'optuna' (got 'foo')"
    doc["model"]["search"].update(engine="optuna", storage="optuna.db")
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == (f"{path}: model.search.storage: Value error, expected a database URL such as "
                              "sqlite:////abs/path/optuna.db or postgresql://host/optuna (got 'optuna.db')")


def test_both_engines_read_the_yaml_space_alike():
    """Optuna's distributions keep hyperopt's meaning: randint's upper bound excluded, quniform on its grid."""
    space = {"a": {"randint": [1, 4]}, "b": {"quniform": [2, 7, 2]}, "c": {"loguniform": [0.01, 1]},
             "d": {"choice": ["x", 3]}}
    dists = tuning.optuna_distributions(space)
    assert (dists["a"].low, dists["a"].high) == (1, 3)
    assert (dists["b"].low, dists["b"].high, dists["b"].step) == (2.0, 6.0, 2.0)
    assert dists["c"].log and (dists["c"].low, dists["c"].high) == (0.01, 1.0)
    assert dists["d"].choices == ("x", 3)
    assert set(tuning.hyperopt_space(space)) == set(space)
