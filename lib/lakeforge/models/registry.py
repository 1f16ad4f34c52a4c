"""MLflow tracking and registry access, configured from ``MlflowSettings`` (never from the environment)."""

from __future__ import annotations

import logging

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lakeforge.config import MlflowSettings
from lakeforge.errors import ModelNotFoundError
from lakeforge.liveness import HOST_TAG, PID_TAG, orphaned

log = logging.getLogger(__name__)


def mlflow_client(settings: MlflowSettings) -> MlflowClient:
    """Point MLflow at the configured stores and return a client for them."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri or settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri or settings.tracking_uri)


def ensure_experiment(client: MlflowClient, settings: MlflowSettings) -> str:
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(settings.experiment, artifact_location=settings.artifact_root)


def find_version(client: MlflowClient, name: str, *, alias: str | None = None, version: int | None = None) -> ModelVersion:
    """The model version named by ``alias`` or ``version``, or a clear ``ModelNotFoundError``."""
    if (alias is None) == (version is None):
        raise ValueError("give exactly one of alias or version")
    try:
        client.get_registered_model(name)
    except MlflowException:
        raise ModelNotFoundError(f"model '{name}' is not in the registry at {client._registry_uri}; "
                                 "train and register it first (jobs/train.py)") from None
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, str(version))
    except MlflowException:
        what = f"alias '{alias}'" if alias is not None else f"version {version}"
        known = sorted({a for mv in client.search_model_versions(f"name='{name}'") for a in mv.aliases})
        raise ModelNotFoundError(f"model '{name}' has no {what} (aliases in use: {known or 'none'})") from None


def versions_with_tags(client: MlflowClient, name: str, tags: dict[str, str]) -> list[ModelVersion]:
    """Registered versions of ``name`` carrying all of ``tags`` (newest first)."""
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return []
    matching = [mv for mv in versions if all(mv.tags.get(k) == v for k, v in tags.items())]
    return sorted(matching, key=lambda mv: int(mv.version), reverse=True)


def reap_orphaned_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark FAILED the runs of the experiment still RUNNING whose process, on this machine, is gone (a job killed
    mid-run); their ids."""
    reaped = []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        if orphaned(run.data.tags.get(HOST_TAG), run.data.tags.get(PID_TAG)):
            client.set_tag(run.info.run_id, "lakeforge.failure", "killed: its process ended before the run did")
            client.set_terminated(run.info.run_id, "FAILED")
            reaped.append(run.info.run_id)
    if reaped:
        log.warning("marked %d run(s) of a killed job FAILED: %s", len(reaped), reaped)
    return reaped


def pinned_requirements(framework: str = "xgboost") -> list[str]:
    """The pip requirements a logged model carries: the versions installed here of what scoring it needs."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("pyspark", framework, "scikit-learn", "pandas", "pyarrow", "numpy")]
