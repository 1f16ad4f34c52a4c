"""The registry gate: a new version is ``challenger``; it becomes ``champion`` only when it clears the
absolute threshold and beats the current champion, scored on the same holdout rows, by the configured margin.
The gate metric is AUC for a classifier (higher is better) and RMSE for a regressor (lower is better)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Literal

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame

from lakeforge.config import ModelSettings
from lakeforge.models.load import load_registered
from lakeforge.train.estimator import better, holdout_metrics

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"
Promote = Literal["never", "gate", "always"]


@dataclass(frozen=True)
class GateDecision:
    version: int
    promote: str
    metric: str
    challenger_score: float
    champion_version: int | None
    champion_score: float | None
    threshold: float | None
    min_improvement: float
    promoted: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def current_champion(client: MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def decide(version: int, challenger: float, champion_version: int | None, champion: float | None,
           model: ModelSettings, promote: Promote) -> GateDecision:
    """The promotion rule, on numbers alone."""
    metric = model.gate_metric
    threshold = model.min_auc if metric == "auc" else model.max_rmse
    name = metric.upper()

    def decision(promoted: bool, reason: str) -> GateDecision:
        return GateDecision(version, promote, metric, challenger, champion_version, champion, threshold,
                            model.min_improvement, promoted, reason)

    if promote == "never":
        return decision(False, "promotion disabled (--promote never)")
    if promote == "always":
        return decision(True, "promoted unconditionally (--promote always)")
    if metric == "auc" and challenger < threshold:
        return decision(False, f"holdout AUC {challenger:.4f} is below model.min_auc {threshold}")
    if metric == "rmse" and threshold is not None and challenger > threshold:
        return decision(False, f"holdout RMSE {challenger:.4f} is above model.max_rmse {threshold}")
    if champion is None:
        return decision(True, f"no champion yet and {name} {challenger:.4f} passes the threshold")
    if champion_version == version:
        return decision(True, "already champion")
    if better(metric, challenger, champion, model.min_improvement):
        return decision(True, f"{name} {challenger:.4f} beats champion v{champion_version} ({champion:.4f}) by "
                              f">= {model.min_improvement}")
    return decision(False, f"{name} {challenger:.4f} does not beat champion v{champion_version} ({champion:.4f}) "
                           f"by {model.min_improvement}")


def apply_gate(client: MlflowClient, model: ModelSettings, version: int, challenger: float, holdout: DataFrame,
               promote: Promote = "gate") -> GateDecision:
    """Alias ``version`` challenger, score the champion on ``holdout``, decide, move the aliases, log the decision."""
    name = model.registered_name
    client.set_registered_model_alias(name, CHALLENGER, str(version))
    champion = current_champion(client, name)
    champion_version = int(champion.version) if champion is not None else None
    champion_score = None
    if champion is not None and champion_version != version and promote == "gate":
        champion_model = load_registered(f"models:/{name}/{champion.version}", model.task)
        champion_score = holdout_metrics(champion_model.score(holdout), model.task)[model.gate_metric]
    result = decide(version, challenger, champion_version, champion_score, model, promote)
    if result.promoted:
        client.set_registered_model_alias(name, CHAMPION, str(version))
    log.info("registry gate for %s v%s: %s (%s)", name, version, "promoted" if result.promoted else "not promoted",
             result.reason)
    return result
