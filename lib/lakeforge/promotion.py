"""The registry gate as a step of its own, for schedulers that run train -> gate -> score as separate tasks.

``jobs/train.py --promote never`` registers the new version as ``challenger`` and leaves ``champion`` alone;
``jobs/gate.py`` then applies the same rule ``train_model`` applies inline (``lakeforge.train.gate``): the
challenger's holdout score, logged at training, against the current champion scored on the same holdout rows
(the gold table at the version the challenger was trained on, split the same way).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from lakeforge.config import Settings
from lakeforge.errors import InputError
from lakeforge.features import entity_key
from lakeforge.holdout import in_training, load_spec
from lakeforge.train.estimator import with_label
from lakeforge.train.gate import GateDecision, Promote, apply_gate
from lakeforge.train.registry import find_version, mlflow_client
from lakeforge.train.splits import holdout_split

LINEAGE_TAGS = ("gold_table", "gold_version")


def holdout_rows(spark: SparkSession, settings: Settings, tags: dict[str, str], run_id: str | None = None) -> DataFrame:
    """The holdout a version was scored on: the gold table at the version its ``tags`` name, split by the spec its
    training run logged (split as configured for a run from before specs were logged)."""
    gold = with_label(spark.read.format("delta").option("versionAsOf", int(tags["gold_version"])).load(tags["gold_table"]),
                      settings.features)
    spec = load_spec(run_id) if run_id else None
    if spec is not None:
        return gold.where(~in_training(spec, gold))
    _, holdout, _ = holdout_split(gold, settings.features, entity_key(settings), settings.model.seed,
                                  settings.model.task == "classification")
    return holdout


def gate_registered_version(spark: SparkSession, settings: Settings, *, alias: str | None = "challenger",
                            version: int | None = None, promote: Promote = "gate") -> GateDecision:
    """Decide whether the version named by ``alias`` (default ``challenger``) or ``version`` becomes champion.

    The decision goes to the version's training run (``registry_gate.json``, tags ``promoted`` and
    ``gate_reason``), as when training applies the gate itself.
    """
    if version is not None:
        alias = None
    model = settings.model
    client = mlflow_client(settings.mlflow)
    mv = find_version(client, model.registered_name, alias=alias, version=version)
    metric = model.gate_metric
    wanted = (*LINEAGE_TAGS, f"holdout_{metric}")
    missing = [t for t in wanted if t not in mv.tags]
    if missing:
        raise InputError(f"model {model.registered_name} v{mv.version} has no tag(s) {', '.join(missing)}; "
                         "only versions registered by lakeforge's training can be gated")
    decision = apply_gate(client, model, int(mv.version), float(mv.tags[f"holdout_{metric}"]),
                          holdout_rows(spark, settings, mv.tags, mv.run_id), promote)
    if mv.run_id:
        client.log_dict(mv.run_id, decision.as_dict(), "registry_gate.json")
        client.set_tag(mv.run_id, "promoted", str(decision.promoted).lower())
        client.set_tag(mv.run_id, "gate_reason", decision.reason)
    return decision
