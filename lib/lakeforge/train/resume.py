"""Training as a resumable sequence of idempotent steps: fit -> log the model -> register it -> gate it. Each step
leaves a mark, so that a run killed at any point is finished by the next one instead of being skipped or redone:

- logged: the training run carries the tag ``lakeforge.model_uri`` (its metrics and lineage tags are logged
  before); a rerun registers that model instead of training again;
- registered: the model version is created with its lineage and holdout tags in one call (never a version
  without them); a rerun finds it by those tags;
- gated: the version carries ``lakeforge.gate``, the gate's decision as JSON; a version without it is gated by
  the rerun, on the holdout its run logged (``lakeforge.holdout``).
"""

from __future__ import annotations

import json
import logging

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession

from lakeforge.config import Settings
from lakeforge.holdout import in_training, load_spec
from lakeforge.models.registry import versions_with_tags
from lakeforge.models.serving import SERVING_URI_TAG, UNAVAILABLE_TAG
from lakeforge.tables import Table
from lakeforge.train.estimator import with_label
from lakeforge.train.gate import GateDecision, Promote, apply_gate

log = logging.getLogger(__name__)
GATE_TAG = "lakeforge.gate"            # on a model version: the gate's decision (JSON) once it was gated
MODEL_URI_TAG = "lakeforge.model_uri"  # on a training run: the model it logged, before it was registered


def recorded_holdout(spark: SparkSession, settings: Settings, tags: dict[str, str], run_id: str | None) -> DataFrame:
    """The holdout a version was scored on: the gold table at the version its ``tags`` name, split by the spec its
    training run logged (split as configured for a run from before specs were logged)."""
    from lakeforge.paths import entity_key
    from lakeforge.train.splits import holdout_split

    gold = with_label(Table.of(tags["gold_table"]).read(spark, int(tags["gold_version"])), settings.features)
    spec = load_spec(run_id) if run_id else None
    if spec is not None:
        return gold.where(~in_training(spec, gold))
    _, holdout, _ = holdout_split(gold, settings.features, entity_key(settings), settings.model.seed,
                                  settings.model.task == "classification")
    return holdout


def register_version(client: MlflowClient, settings: Settings, run_id: str, model_uri: str,
                     tags: dict[str, str]) -> ModelVersion:
    """Register the model a run logged, with its tags, in one call."""
    del client  # registered through the fluent API, which waits until the version is ready
    return mlflow.register_model(model_uri, settings.model.registered_name, tags=tags)


def gate_and_record(client: MlflowClient, settings: Settings, version: int, score: float, holdout: DataFrame,
                    promote: Promote, run_id: str | None) -> GateDecision:
    """Apply the gate to ``version`` and record the decision on the version (``lakeforge.gate``) and its run
    (``registry_gate.json``, tags ``promoted`` and ``gate_reason``). Applying it again gives the same aliases."""
    model = settings.model
    decision = apply_gate(client, model, version, score, holdout, promote)
    client.set_model_version_tag(model.registered_name, str(version), GATE_TAG, json.dumps(decision.as_dict()))
    if run_id:
        client.log_dict(run_id, decision.as_dict(), "registry_gate.json")
        client.set_tag(run_id, "promoted", str(decision.promoted).lower())
        client.set_tag(run_id, "gate_reason", decision.reason)
        if decision.champion_score is not None:
            client.log_metric(run_id, f"champion_holdout_{model.gate_metric}", decision.champion_score)
    describe(client, settings, version, decision)
    return decision


def describe(client: MlflowClient, settings: Settings, version: int, decision: GateDecision) -> None:
    """Descriptions a registry user reads: the model (what it predicts from what) and the version (its data
    version, holdout metrics and the gate's decision)."""
    model, features = settings.model, settings.features
    name = model.registered_name
    client.update_registered_model(name, description=(
        f"lakeforge {model.task} model ({model.framework}) of '{features.label}' from the gold table "
        f"'{features.table}' over {len(features.feature_columns)} features ({', '.join(features.feature_columns)}). "
        f"Versions are registered by the train job as challenger; champion only through the registry gate "
        f"({model.gate_metric}, model.min_improvement {model.min_improvement})."))
    mv = client.get_model_version(name, str(version))
    tags, metric = mv.tags, model.gate_metric
    logged = _holdout_metrics(client, mv.run_id) if mv.run_id else {}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(logged.items()) if k not in ("rows",))
    client.update_model_version(name, str(version), description=(
        f"Trained on {tags.get('gold_table')} at Delta version {tags.get('gold_version')} (config "
        f"{tags.get('config_hash')}, run {mv.run_id}). Holdout: {shown or metric + ' ' + tags.get('holdout_' + metric, '?')}. "
        f"Gate: {'champion' if decision.promoted else 'not promoted'}: {decision.reason}."))


def _holdout_metrics(client: MlflowClient, run_id: str) -> dict[str, float]:
    logged = client.get_run(run_id).data.metrics
    return {k.removeprefix("holdout_"): v for k, v in logged.items() if k.startswith("holdout_")}


def resume(spark: SparkSession, settings: Settings, client: MlflowClient, experiment_id: str,
           lineage_tags: dict[str, str], version_tags: dict[str, str], promote: Promote):
    """Finish what an earlier run on the same gold version and configuration left: a version to gate, or a logged
    model to register and gate. Returns ``(run_id, version, metrics, decision, gated_now)``, or None when there is
    nothing to resume (train from scratch)."""
    name, metric = settings.model.registered_name, settings.model.gate_metric
    versions = versions_with_tags(client, name, lineage_tags)
    if versions:
        mv = versions[0]
        metrics = _holdout_metrics(client, mv.run_id)
        if GATE_TAG in mv.tags:
            log.info("model %s v%s already trained on %s and gated; not retraining", name, mv.version, lineage_tags)
            return mv.run_id, int(mv.version), metrics, json.loads(mv.tags[GATE_TAG]), False
        log.warning("model %s v%s was registered but never gated (its job was killed): gating it now", name,
                    mv.version)
        decision = gate_and_record(client, settings, int(mv.version), float(mv.tags[f"holdout_{metric}"]),
                                   recorded_holdout(spark, settings, mv.tags, mv.run_id), promote, mv.run_id)
        client.set_terminated(mv.run_id, "FINISHED")  # every step of that run is done now
        return mv.run_id, int(mv.version), metrics, decision.as_dict(), True
    query = " AND ".join([f"tags.`{MODEL_URI_TAG}` != ''",
                          *[f"tags.`{k}` = '{v}'" for k, v in lineage_tags.items()]])
    logged = client.search_runs([experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    if not logged:
        return None
    run = logged[0]
    log.warning("run %s logged a model for %s but never registered it (its job was killed): registering and gating "
                "it now", run.info.run_id, lineage_tags)
    metrics = _holdout_metrics(client, run.info.run_id)
    serving = {k: run.data.tags[k] for k in (SERVING_URI_TAG, UNAVAILABLE_TAG) if k in run.data.tags}
    mv = register_version(client, settings, run.info.run_id, run.data.tags[MODEL_URI_TAG],
                          {**version_tags, f"holdout_{metric}": f"{metrics[metric]:.6f}", **serving})
    decision = gate_and_record(client, settings, int(mv.version), metrics[metric],
                               recorded_holdout(spark, settings, lineage_tags, run.info.run_id), promote,
                               run.info.run_id)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id, int(mv.version), metrics, decision.as_dict(), True
