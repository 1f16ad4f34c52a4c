"""One search loop for every model (xgboost boosters in ``train.search``, the torch network in
``train.deep.trainer``): a YAML space (``model.search.space``), TPE, and two engines behind one call, ``search``.

* ``hyperopt``: ``fmin`` with ``SparkTrials(parallelism)`` (strategy ``parallel``) or plain ``Trials``
  (``distributed``), seeded with ``model.seed``. Its trials live in the driver's memory only.
* ``optuna``: a study with a seeded ``TPESampler`` kept in ``model.search.storage`` (default: SQLite at
  ``<storage.files>/search/optuna.db``) under a name made of the model name, the data version and a hash of the
  configuration without the search budget, so a rerun of the same training continues the study: finished trials
  are reused and only ``max_evals`` minus those run. ``parallel`` asks ``parallelism`` trials at a time and
  evaluates them in one Spark job (a task per trial, like SparkTrials); ``distributed`` runs one trial after
  another on the driver (each trial is itself distributed). Trials left RUNNING by a driver that died (same host,
  process gone: ``lakeforge.liveness``) are marked FAIL when the study is opened again and do not count.

The objective takes the sampled parameters (integers where ``integers`` says) and returns the validation score;
for ``parallel`` it runs on executors, so it must be picklable and read its data from a broadcast. Every trial
becomes a nested MLflow run of the active run (logged from the driver after the search, as before).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

import mlflow
import numpy as np

from lakeforge.config import SearchSettings, Settings
from lakeforge.errors import InputError, TrainingConfigError
from lakeforge.liveness import HOST, HOST_TAG, PID_TAG, orphaned, owner_tags
from lakeforge.paths import search_folder

ENGINES = ("hyperopt", "optuna")
BUDGET_KEYS = ("max_evals", "timeout_seconds", "no_progress_evals", "parallelism", "storage")
ABANDONED_ATTR = "lakeforge.abandoned_trials"
Objective = Callable[[dict[str, Any]], float]
_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # s3a://, dbfs:/, abfss:// (not C:, not file:)


@dataclass(frozen=True)
class SearchResult:
    """What a search found: ``trials`` counts the finished trials of the search (for Optuna, of the whole study,
    reused ones included); ``new_trials`` those this call ran."""

    best_params: dict[str, Any]
    best_validation_score: float
    trials: int
    strategy: str
    metric: str = "auc"
    engine: str = "hyperopt"
    new_trials: int = 0


@dataclass(frozen=True)
class Study:
    """Where an Optuna study lives: a storage URL and the study's name in it."""

    storage: str
    name: str


@dataclass(frozen=True)
class TrialRecord:
    number: int
    params: dict[str, Any]
    score: float | None  # None: the trial failed
    duration: float
    reused: bool = False
    error: str | None = None


def hyperopt_space(space: Mapping[str, Mapping[str, list]]) -> dict[str, Any]:
    """YAML space -> hyperopt expressions."""
    from hyperopt import hp

    out = {}
    for name, spec in space.items():
        kind, args = next(iter(spec.items()))
        if kind == "choice":
            out[name] = hp.choice(name, list(args))
        elif kind == "uniform":
            out[name] = hp.uniform(name, *args)
        elif kind == "loguniform":
            out[name] = hp.loguniform(name, math.log(args[0]), math.log(args[1]))
        elif kind == "quniform":
            out[name] = hp.quniform(name, *args)
        else:
            out[name] = hp.randint(name, int(args[0]), int(args[1]))
    return out


def optuna_distributions(space: Mapping[str, Mapping[str, list]]) -> dict[str, Any]:
    """YAML space -> Optuna distributions with hyperopt's meaning (``randint``'s upper bound is exclusive)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name, spec in space.items():
        kind, args = next(iter(spec.items()))
        if kind == "choice":
            out[name] = CategoricalDistribution(list(args))
        elif kind in ("uniform", "loguniform"):
            out[name] = FloatDistribution(float(args[0]), float(args[1]), log=kind == "loguniform")
        elif kind == "quniform":
            low, high, step = (float(a) for a in args)
            out[name] = FloatDistribution(low, low + math.floor((high - low) / step) * step, step=step)
        else:
            out[name] = IntDistribution(int(args[0]), int(args[1]) - 1)
    return out


def clean_params(params: Mapping[str, Any], integers: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """Engines return floats (and numpy scalars); the trainer wants ints where it counts (``integers``)."""
    cleaned = {}
    for key, value in params.items():
        value = value.item() if isinstance(value, np.generic) else value
        if key in integers and isinstance(value, float):
            value = int(round(value))
        cleaned[key] = value
    return cleaned


def study_storage(settings: Settings) -> str:
    """``model.search.storage``, else an SQLite file under the files location (which must then be local)."""
    search = settings.model.search
    if search.storage is not None:
        return search.storage
    root = settings.storage.files_root
    if _REMOTE.match(root) and not root.startswith("file:"):
        raise InputError(f"model.search.engine is optuna and the files location {root} (storage.files, else "
                         "storage.root) is not a local path, where the study's "
                         "SQLite file cannot live; set model.search.storage to a database URL that every driver run "
                         "reaches (e.g. postgresql://host/optuna or mysql://host/optuna)")
    folder = search_folder(settings)
    folder = urlparse(folder).path if folder.startswith("file:") else folder
    Path(folder).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(folder).resolve() / 'optuna.db'}"


def study_for(settings: Settings, data: Mapping[str, Any]) -> Study:
    """The study of one training identity: model name, data version (``gold_version`` of ``data``) and a hash of
    the data's table and the features and model settings without the search budget (raising ``max_evals``
    continues the study; changing the space, the seed or the data starts another)."""
    config = {"features": settings.features.model_dump(mode="json"), "model": settings.model.model_dump(mode="json")}
    for key in BUDGET_KEYS + ("engine",):
        config["model"]["search"].pop(key, None)
    spec = {"config": config, "table": str(data.get("gold_table", "")), "version": str(data.get("gold_version", ""))}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    version = data.get("gold_version")
    name = "-".join([settings.model.registered_name, *([f"v{version}"] if version is not None else []), digest])
    return Study(study_storage(settings), name)


def run_lineage() -> dict[str, str]:
    """The data lineage tags (``gold_table``, ``gold_version``) of the active MLflow run, as ``train_model`` sets
    them before it fits."""
    active = mlflow.active_run()
    if active is None:
        return {}
    tags = mlflow.get_run(active.info.run_id).data.tags
    return {k: tags[k] for k in ("gold_table", "gold_version") if k in tags}


def search(objective: Objective, settings: SearchSettings, *, seed: int, metric: str, maximize: bool,
           integers: frozenset[str] | set[str] = frozenset(), spark=None, study: Study | None = None) -> SearchResult:
    """Run the trials of ``settings`` (engine, strategy, budget) on ``objective`` and log them; see the module."""
    if settings.strategy == "none" or not settings.space:
        raise TrainingConfigError("model.search: a search needs a strategy (parallel or distributed) and a space")
    if settings.strategy == "parallel" and spark is None:
        raise TrainingConfigError("model.search.strategy parallel runs trials on Spark executors: pass spark=")
    if settings.engine == "optuna":
        if study is None:
            raise TrainingConfigError("model.search.engine optuna needs a study (tuning.study_for(settings, data))")
        records = _optuna(objective, settings, seed, maximize, frozenset(integers), spark, study)
    else:
        records = _hyperopt(objective, settings, seed, maximize, frozenset(integers), spark)
    finished = [r for r in records if r.score is not None]
    if not finished:
        errors = "; ".join(sorted({r.error for r in records if r.error}))[:1000]
        raise TrainingConfigError(f"model.search: none of the {len(records)} trial(s) finished ({errors}); fix "
                                  "model.search.space or the parameters the trials fail on")
    best = (max if maximize else min)(finished, key=lambda r: r.score)
    _log_trials(records, settings, metric, study)
    return SearchResult(best.params, best.score, len(records), settings.strategy, metric, settings.engine,
                        sum(not r.reused for r in records))


def _hyperopt(objective: Objective, settings: SearchSettings, seed: int, maximize: bool, integers: frozenset[str],
              spark) -> list[TrialRecord]:
    from hyperopt import STATUS_OK, SparkTrials, Trials, fmin, space_eval, tpe

    sign = -1.0 if maximize else 1.0  # hyperopt minimises

    def wrapped(sampled: dict[str, Any]) -> dict[str, Any]:
        started = time.time()
        score = objective(clean_params(sampled, integers))
        return {"loss": sign * score, "status": STATUS_OK, "duration": time.time() - started}

    def no_progress(trials, *_):  # hyperopt's no_progress_loss reads the newest trial, which SparkTrials may lack
        losses = [t["result"]["loss"] for t in trials.trials if t.get("result", {}).get("status") == STATUS_OK]
        return bool(losses) and len(losses) - 1 - int(np.argmin(losses)) >= settings.no_progress_evals, []

    parallel = settings.strategy == "parallel"
    trials = SparkTrials(parallelism=settings.parallelism, spark_session=spark) if parallel else Trials()
    space = hyperopt_space(settings.space)
    fmin(wrapped, space, algo=tpe.suggest, max_evals=settings.max_evals, timeout=settings.timeout_seconds,
         trials=trials, rstate=np.random.default_rng(seed), show_progressbar=False,
         early_stop_fn=no_progress if settings.no_progress_evals else None)
    records = []
    for number, trial in enumerate(trials.trials):
        values = {k: v[0] for k, v in trial["misc"]["vals"].items() if v}
        params = clean_params(space_eval(space, values), integers) if values else {}
        result = trial.get("result", {})
        ok = result.get("status") == STATUS_OK
        records.append(TrialRecord(number, params, sign * result["loss"] if ok else None,
                                    float(result.get("duration", 0.0)), error=None if ok else str(result.get("error", ""))))
    return records


def _optuna(objective: Objective, settings: SearchSettings, seed: int, maximize: bool, integers: frozenset[str],
            spark, place: Study) -> list[TrialRecord]:
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()  # its warnings go through lakeforge's handler, formatted like ours
    optuna.logging.enable_propagation()
    study = optuna.create_study(storage=place.storage, study_name=place.name, load_if_exists=True,
                                direction="maximize" if maximize else "minimize")
    abandoned = _fail_abandoned(study)
    reused = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))}
    # A resumed study draws on from where it is (a fresh sampler with the same seed would repeat its first trials).
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    distributions = optuna_distributions(settings.space)
    deadline = time.monotonic() + settings.timeout_seconds if settings.timeout_seconds else math.inf
    parallel = settings.strategy == "parallel"
    while time.monotonic() < deadline:
        counted = _counted(study, abandoned)
        if len(counted) >= settings.max_evals or _no_progress(counted, settings.no_progress_evals, maximize):
            break
        asked = [study.ask(distributions) for _ in range(min(settings.max_evals - len(counted),
                                                              settings.parallelism if parallel else 1))]
        for trial in asked:
            trial.set_user_attr(HOST_TAG, HOST)
            trial.set_user_attr(PID_TAG, str(os.getpid()))
        work = [(trial.number, clean_params(trial.params, integers)) for trial in asked]
        try:
            if parallel:  # a trial that raises on an executor fails alone, as with SparkTrials
                results = _on_executors(spark, objective, work)
            else:  # like hyperopt's Trials: a trial that raises on the driver stops the search with its error
                started = time.time()
                results = [(float(objective(work[0][1])), time.time() - started, None)]
        except BaseException:
            for trial in asked:  # failed, or the driver is stopping: not left RUNNING
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        for trial, (score, duration, error) in zip(asked, results):
            trial.set_user_attr("duration_seconds", duration)
            if error is None:
                study.tell(trial, score)
            else:
                trial.set_user_attr("error", error[:1000])
                study.tell(trial, state=TrialState.FAIL)
    return [TrialRecord(t.number, clean_params(t.params, integers),
                        t.value if t.state == TrialState.COMPLETE else None,
                        float(t.user_attrs.get("duration_seconds", 0.0)), t.number in reused, t.user_attrs.get("error"))
            for t in _counted(study, abandoned)]


def _evaluate(objective: Objective, number: int, params: dict[str, Any]) -> tuple[float | None, float, str | None]:
    started = time.time()
    try:
        return float(objective(params)), time.time() - started, None
    except Exception as exc:  # noqa: BLE001 - recorded as the trial's failure
        return None, time.time() - started, f"{type(exc).__name__}: {exc}"


def _on_executors(spark, objective: Objective, work: list[tuple[int, dict[str, Any]]]) -> list:
    """One Spark job, one task per trial (the objective reads its data from a broadcast, as with SparkTrials)."""
    context = spark.sparkContext
    context.setJobDescription(f"optuna trials {', '.join(str(n) for n, _ in work)}")
    try:
        done = dict(context.parallelize(work, len(work)).map(lambda item: (item[0], _evaluate(objective, *item)))
                    .collect())
    finally:
        context.setJobDescription(None)
    return [done[number] for number, _ in work]


def _fail_abandoned(study) -> set[int]:
    """Mark FAIL the RUNNING trials whose driver (same host) is gone; remember them so that they do not count."""
    from optuna.trial import TrialState

    abandoned = set(study.user_attrs.get(ABANDONED_ATTR, []))
    found = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
             if orphaned(t.user_attrs.get(HOST_TAG), t.user_attrs.get(PID_TAG))]
    for number in found:
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    if found:
        abandoned |= set(found)
        study.set_user_attr(ABANDONED_ATTR, sorted(abandoned))
    return abandoned


def _counted(study, abandoned: set[int]) -> list:
    """Finished trials that count towards max_evals (not those abandoned by a dead driver), by number."""
    from optuna.trial import TrialState

    return sorted((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
                   if t.number not in abandoned), key=lambda t: t.number)


def _no_progress(trials: list, evals: int | None, maximize: bool) -> bool:
    """The best finished trial is ``evals`` finished trials old."""
    from optuna.trial import TrialState

    scores = [t.value for t in trials if t.state == TrialState.COMPLETE]
    if not evals or not scores:
        return False
    best = int(np.argmax(scores) if maximize else np.argmin(scores))
    return len(scores) - 1 - best >= evals


def _log_trials(records: list[TrialRecord], settings: SearchSettings, metric: str, study: Study | None) -> None:
    """One nested run per trial, logged from the driver (workers need no access to the tracking store)."""
    active = mlflow.active_run()
    if active is None:
        return
    tags = {"search_engine": settings.engine, **({"search_study": study.name} if study else {})}
    mlflow.set_tags(tags)
    mlflow.log_metric("search_new_trials", sum(not r.reused for r in records))
    for record in records:
        with mlflow.start_run(run_name=f"trial-{record.number:03d}", nested=True,
                              experiment_id=active.info.experiment_id, tags={**owner_tags(), **tags}):
            mlflow.log_params({**record.params, "strategy": settings.strategy, "engine": settings.engine})
            if record.score is not None:
                mlflow.log_metrics({f"validation_{metric}": record.score, "duration_seconds": record.duration})
            mlflow.set_tags({"trial_status": "ok" if record.score is not None else "fail",
                             "trial_reused": str(record.reused).lower(),
                             **({"trial_error": record.error[:500]} if record.error else {})})
