"""The Spark-free serving model of a trained version (``models.serving``): built from the fitted model and the gold
table's schema, logged in the training run beside the main model, and checked for parity with the batch scores of
the same rows before it is offered for serving.

A version whose serving model cannot be built (a derived expression the Spark-free evaluator does not know) or
does not agree with batch (a difference over ``PARITY_TOLERANCE``) is still registered and scored in batch; its
``serving_unavailable`` tag says why, and ``lakeforge serve`` refuses it with that reason.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow
import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from lakeforge.config import Settings
from lakeforge.models import SCORE
from lakeforge.errors import UnsupportedExpressionError
from lakeforge.models.expressions import compile_expression
from lakeforge.models.serving import (
    ARTIFACT_NAME,
    SERVING_URI_TAG,
    SPEC_FILE,
    UNAVAILABLE_TAG,
    ServingModel,
    ServingSpec,
    log_serving_model as log_pyfunc,
    write_xgboost,
)

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-6
PARITY_ROWS = 5000                          # holdout rows compared at registration


def serving_inputs(settings: Settings, gold: T.StructType) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """The raw columns a request must carry and the derived columns computed from them, with their gold types.

    Only what the features need: a derived column no feature reads (the label's ``is_delayed``) is left out, and so
    are the columns only it reads (``arr_delay``)."""
    features, types = settings.features, {f.name: f.dataType.simpleString() for f in gold.fields}
    derived = dict(features.derived)
    needed: set[str] = {c for c in features.feature_columns if c in derived}
    inputs: list[str] = [c for c in features.feature_columns if c not in derived]
    for name in reversed(list(derived)):
        if name in needed:
            for column in compile_expression(derived[name]).columns:
                (needed.add if column in derived and column != name else inputs.append)(column)
    ordered = [f.name for f in gold.fields if f.name in set(inputs)]
    missing = sorted(set(inputs) - set(types))
    if missing:
        raise UnsupportedExpressionError(f"columns {missing} are read by features.derived but are not in the gold "
                                         "table")
    return ({c: types[c] for c in ordered},
            {n: (e, types[n]) for n, e in derived.items() if n in needed})


def pii_columns(settings: Settings) -> set[str]:
    """Gold columns that hold a source's PII column (hashed in silver): the base source's, and what joins select."""
    features, sources = settings.features, settings.sources
    columns = set(sources[features.base].pii) if features.base in sources else set()
    for join in features.joins:
        pii = sources[join.source].pii if join.source in sources else ()
        columns |= {dst for src, dst in join.select.items() if src in pii}
    return columns


def build_spec(settings: Settings, gold: T.StructType, fitted) -> ServingSpec:
    """The spec of ``fitted`` (the xgboost pipeline or the torch network)."""
    inputs, derived = serving_inputs(settings, gold)
    features, task = settings.features, settings.model.task
    hashed = tuple(c for c in inputs if c in pii_columns(settings))
    if settings.model.framework == "torch":
        pre = fitted.preprocessing
        return ServingSpec(task, "torch", inputs, derived, tuple(pre.categorical), tuple(pre.numeric),
                           threshold=settings.score.threshold, hashed=hashed)
    *indexers, assembler, _ = fitted.pipeline.stages
    labels: dict[str, list[str]] = {}
    for indexer in indexers:
        labels.update({c: list(ls) for c, ls in zip(indexer.getInputCols(), indexer.labelsArray)})
    return ServingSpec(task, "xgboost", inputs, derived, tuple(features.categorical), tuple(features.numeric),
                       labels=labels, threshold=settings.score.threshold, hashed=hashed)


def _write(folder: Path, spec: ServingSpec, fitted) -> None:
    if spec.kind == "xgboost":
        write_xgboost(folder, spec, fitted.pipeline.stages[-1].get_booster())
        return
    from lakeforge.models.serving_torch import write_network

    folder.mkdir(parents=True)
    (folder / SPEC_FILE).write_text(spec.to_json())
    write_network(folder, fitted.preprocessing, fitted.net_spec, fitted.state)


def parity(model: ServingModel, fitted, test: DataFrame, rows: int = PARITY_ROWS) -> tuple[float, int]:
    """Largest |online - batch| over up to ``rows`` holdout rows, and how many were compared."""
    scored = fitted.score(test.limit(rows), keep=list(model.spec.inputs)).toPandas()
    if scored.empty:
        return 0.0, 0
    online = model.predict_pandas(scored[list(model.spec.inputs)])
    return float(np.max(np.abs(online - scored[SCORE].to_numpy(dtype=np.float64)))), len(scored)


def log_serving_model(settings: Settings, fitted, gold: T.StructType, test: DataFrame) -> dict[str, str]:
    """Build, check and log the serving model in the active run; the tags the registered version gets."""
    try:
        spec = build_spec(settings, gold, fitted)
        spec.check()
    except (UnsupportedExpressionError, ValueError) as exc:
        reason = f"no Spark-free model: {exc}"
        log.warning("%s; the version is scored in batch only", reason)
        mlflow.set_tag(UNAVAILABLE_TAG, reason[:4000])
        return {UNAVAILABLE_TAG: reason[:4000]}
    with tempfile.TemporaryDirectory(prefix="lakeforge-serving-") as tmp:
        folder = Path(tmp) / ARTIFACT_NAME
        _write(folder, spec, fitted)
        difference, compared = parity(ServingModel.load(folder), fitted, test)
        mlflow.log_metrics({"serving_parity_max_abs_diff": difference, "serving_parity_rows": compared})
        if difference > PARITY_TOLERANCE:
            reason = (f"the Spark-free model differs from batch by {difference:.3g} (> {PARITY_TOLERANCE:g}) on "
                      f"{compared} holdout rows")
            log.warning("%s; the version is scored in batch only", reason)
            mlflow.set_tag(UNAVAILABLE_TAG, reason)
            return {UNAVAILABLE_TAG: reason}
        uri = log_pyfunc(folder, spec.kind)
    mlflow.set_tag(SERVING_URI_TAG, uri)
    log.info("serving model %s: parity with batch %.2g over %d holdout rows", uri, difference, compared)
    return {SERVING_URI_TAG: uri}
