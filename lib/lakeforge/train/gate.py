"""The registry gate: a new version is ``challenger``; it becomes ``champion`` only when it clears the
absolute floor and beats the current champion, scored on the same holdout rows, by the configured margin."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Literal

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame

from lakeforge.config import ModelSettings
from lakeforge.train.estimator import holdout_metrics

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"
Promote = Literal["never", "gate", "always"]


@dataclass(frozen=True)
class GateDecision:
    version: int
    promote: str
    challenger_auc: float
    champion_version: int | None
    champion_auc: float | None
    min_auc: float
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


def decide(version: int, challenger_auc: float, champion_version: int | None, champion_auc: float | None,
           model: ModelSettings, promote: Promote) -> GateDecision:
    """The promotion rule, on numbers alone."""
    def decision(promoted: bool, reason: str) -> GateDecision:
        return GateDecision(version, promote, challenger_auc, champion_version, champion_auc, model.min_auc,
                            model.min_improvement, promoted, reason)

    if promote == "never":
        return decision(False, "promotion disabled (--promote never)")
    if promote == "always":
        return decision(True, "promoted unconditionally (--promote always)")
    if challenger_auc < model.min_auc:
        return decision(False, f"holdout AUC {challenger_auc:.4f} is below model.min_auc {model.min_auc}")
    if champion_auc is None:
        return decision(True, f"no champion yet and AUC {challenger_auc:.4f} >= {model.min_auc}")
    if champion_version == version:
        return decision(True, "already champion")
    if challenger_auc >= champion_auc + model.min_improvement:
        return decision(True, f"AUC {challenger_auc:.4f} beats champion v{champion_version} ({champion_auc:.4f}) by "
                              f">= {model.min_improvement}")
    return decision(False, f"AUC {challenger_auc:.4f} does not beat champion v{champion_version} ({champion_auc:.4f}) "
                           f"by {model.min_improvement}")


def apply_gate(client: MlflowClient, model: ModelSettings, version: int, challenger_auc: float, holdout: DataFrame,
               promote: Promote = "gate") -> GateDecision:
    """Alias ``version`` challenger, score the champion on ``holdout``, decide, move the aliases, log the decision."""
    name = model.registered_name
    client.set_registered_model_alias(name, CHALLENGER, str(version))
    champion = current_champion(client, name)
    champion_version = int(champion.version) if champion is not None else None
    champion_auc = None
    if champion is not None and champion_version != version and promote == "gate":
        champion_model = mlflow.spark.load_model(f"models:/{name}/{champion.version}")
        champion_auc = holdout_metrics(champion_model.transform(holdout))["auc"]
    result = decide(version, challenger_auc, champion_version, champion_auc, model, promote)
    if result.promoted:
        client.set_registered_model_alias(name, CHAMPION, str(version))
    log.info("registry gate for %s v%s: %s (%s)", name, version, "promoted" if result.promoted else "not promoted",
             result.reason)
    return result
