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
from lakeforge.models.registry import find_version, mlflow_client
from lakeforge.train.gate import GateDecision, Promote
from lakeforge.train.resume import gate_and_record, recorded_holdout

LINEAGE_TAGS = ("gold_table", "gold_version")


def holdout_rows(spark: SparkSession, settings: Settings, tags: dict[str, str], run_id: str | None = None) -> DataFrame:
    """The holdout a version was scored on (``lakeforge.train.resume.recorded_holdout``)."""
    return recorded_holdout(spark, settings, tags, run_id)


def gate_registered_version(spark: SparkSession, settings: Settings, *, alias: str | None = "challenger",
                            version: int | None = None, promote: Promote = "gate") -> GateDecision:
    """Decide whether the version named by ``alias`` (default ``challenger``) or ``version`` becomes champion.

    The decision goes to the version (tag ``lakeforge.gate``) and its training run (``registry_gate.json``, tags
    ``promoted`` and ``gate_reason``), as when training applies the gate itself.
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
    return gate_and_record(client, settings, int(mv.version), float(mv.tags[f"holdout_{metric}"]),
                           holdout_rows(spark, settings, mv.tags, mv.run_id), promote, mv.run_id)
