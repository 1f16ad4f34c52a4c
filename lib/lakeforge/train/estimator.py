"""The Spark ML pipeline (categorical indexing, assembly, ``xgboost.spark`` classifier or regressor) and its
holdout metrics."""

from __future__ import annotations

from pyspark.ml import Pipeline
from pyspark.ml.evaluation import BinaryClassificationEvaluator, RegressionEvaluator
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor

from lakeforge.config import FeatureSettings, ModelSettings
from lakeforge.errors import InputError
from lakeforge.models import SCORE
from lakeforge.models.pipeline import INDEXED_SUFFIX, SparkPipelineModel

FEATURES_COL = "features"
VALIDATION_COL = "is_validation"
LABEL_COL = "label"

# Parameters lakeforge sets itself; a config that sets them would silently fight the pipeline.
_RESERVED = {"features_col", "label_col", "num_workers", "random_state", "seed", "missing", "device", "weight_col",
             "validation_indicator_col", "force_repartition", "repartition_random_shuffle"}


def build_pipeline(features: FeatureSettings, model: ModelSettings, *, params: dict | None = None,
                   device: str = "cpu", num_workers: int | None = None, validation: bool = False) -> Pipeline:
    """Index categoricals (unseen and null values get their own index), assemble with nulls kept as NaN
    (xgboost's missing value), then the distributed xgboost classifier or regressor (``model.task``).

    With ``validation`` the rows flagged in ``is_validation`` are xgboost's evaluation set (early stopping
    when ``early_stopping_rounds`` is among the params); without it, and with no ``eval_metric`` in the params,
    the per-round evaluation of the training rows is switched off."""
    params = dict(model.params if params is None else params)
    reserved = sorted(_RESERVED & set(params))
    if reserved:
        raise InputError(f"model.params: {reserved} are set by lakeforge; use model.num_workers / model.seed "
                         "and the features section instead")
    indexed = [f"{c}{INDEXED_SUFFIX}" for c in features.categorical]
    stages = []
    if features.categorical:
        stages.append(StringIndexer(inputCols=list(features.categorical), outputCols=indexed,
                                    handleInvalid="keep", stringOrderType="frequencyDesc"))
    stages.append(VectorAssembler(inputCols=indexed + list(features.numeric), outputCol=FEATURES_COL,
                                  handleInvalid="keep"))
    workers = num_workers if num_workers is not None else model.num_workers
    if not isinstance(workers, int):
        raise ValueError("model.num_workers is auto; resolve it against the cluster first (train.checks.check_cluster)")
    extra = {"weight_col": model.weight_col} if model.weight_col else {}
    if validation:
        # Validation rows are the latest share of the period; without a shuffle a worker could get only those
        # (or none) and stall the barrier stage: force a random repartition across the workers.
        extra.update(validation_indicator_col=VALIDATION_COL, force_repartition=True, repartition_random_shuffle=True)
    elif "eval_metric" not in params:
        # Without an evaluation set xgboost.spark still evaluates the training rows after every round (the
        # objective's default metric, allreduced across the workers) for a history nothing here reads: about 1.2 s
        # of a 1M-row fit's 15 s on two workers (bench/README). The trees are the same without it.
        params.setdefault("disable_default_eval_metric", True)
    estimator = SparkXGBClassifier if model.task == "classification" else SparkXGBRegressor
    stages.append(estimator(features_col=FEATURES_COL, label_col=LABEL_COL, num_workers=workers,
                            random_state=model.seed, device=device, **{"verbose": False, **extra, **params}))
    return Pipeline(stages=stages)


def with_label(frame: DataFrame, features: FeatureSettings) -> DataFrame:
    """Rows that have a label, with it as a double ``label`` column and numeric features as doubles."""
    cast = [F.col(f"`{c}`").cast("double").alias(c) for c in features.numeric]
    others = [c for c in frame.columns if c not in features.numeric]
    return (frame.where(F.col(f"`{features.label}`").isNotNull())
            .select(*others, *cast)
            .withColumn(LABEL_COL, F.col(f"`{features.label}`").cast("double")))


def holdout_metrics(predictions: DataFrame, task: str = "classification") -> dict[str, float]:
    """Classification: AUC, PR-AUC and log loss of ``predictions`` (which carry ``label`` and the model's
    ``SCORE``, ``FittedModel.score``'s output); regression: RMSE, MAE and R2. Computed on the cluster."""
    if task == "regression":
        row = predictions.select(F.avg(LABEL_COL).alias("mean_label"), F.count(F.lit(1)).alias("rows")).first()
        out = {m: RegressionEvaluator(labelCol=LABEL_COL, predictionCol=SCORE, metricName=m).evaluate(predictions)
               for m in ("rmse", "mae", "r2")}
        return {**out, "mean_label": float(row["mean_label"]), "rows": float(row["rows"])}
    roc = BinaryClassificationEvaluator(labelCol=LABEL_COL, rawPredictionCol=SCORE, metricName="areaUnderROC")
    pr = BinaryClassificationEvaluator(labelCol=LABEL_COL, rawPredictionCol=SCORE, metricName="areaUnderPR")
    p = F.least(F.greatest(F.col(SCORE), F.lit(1e-15)), F.lit(1 - 1e-15))
    row = predictions.select(
        F.avg(-(F.col(LABEL_COL) * F.log(p) + (1 - F.col(LABEL_COL)) * F.log(1 - p))).alias("log_loss"),
        F.avg(LABEL_COL).alias("positive_rate"),
        F.count(F.lit(1)).alias("rows"),
    ).first()
    return {
        "auc": roc.evaluate(predictions),
        "pr_auc": pr.evaluate(predictions),
        "log_loss": float(row["log_loss"]),
        "positive_rate": float(row["positive_rate"]),
        "rows": float(row["rows"]),
    }


def fit_pipeline(pipeline: Pipeline, frame: DataFrame, task: str) -> SparkPipelineModel:
    """Fit ``pipeline`` (from ``build_pipeline``) on ``frame``: the fitted model as a ``FittedModel``."""
    return SparkPipelineModel(pipeline.fit(frame), task)


def better(metric: str, candidate: float, reference: float, margin: float = 0.0) -> bool:
    """Whether ``candidate`` beats ``reference`` by ``margin`` on ``metric`` (AUC up, RMSE down)."""
    return candidate >= reference + margin if metric == "auc" else candidate <= reference - margin
