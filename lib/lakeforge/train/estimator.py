"""The Spark ML pipeline (categorical indexing, assembly, ``xgboost.spark``) and its holdout metrics."""

from __future__ import annotations

from pyspark.ml import Pipeline
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from xgboost.spark import SparkXGBClassifier

from lakeforge.config import FeatureSettings, ModelSettings

FEATURES_COL = "features"
LABEL_COL = "label"
SCORE_COL = "probability_1"

# Parameters lakeforge sets itself; a config that sets them would silently fight the pipeline.
_RESERVED = {"features_col", "label_col", "num_workers", "random_state", "seed", "missing", "device"}


def assembled_features(features: FeatureSettings) -> list[str]:
    """The feature names in the order the assembler puts them into the vector (xgboost's f0, f1, ...)."""
    return [*features.categorical, *features.numeric]


def build_pipeline(features: FeatureSettings, model: ModelSettings, *, params: dict | None = None,
                   device: str = "cpu") -> Pipeline:
    """Index categoricals (unseen and null values get their own index), assemble with nulls kept as NaN
    (xgboost's missing value), then the distributed xgboost classifier."""
    params = dict(model.params if params is None else params)
    reserved = sorted(_RESERVED & set(params))
    if reserved:
        raise ValueError(f"model.params: {reserved} are set by lakeforge; use model.num_workers / model.seed "
                         "and the features section instead")
    indexed = [f"{c}__idx" for c in features.categorical]
    stages = []
    if features.categorical:
        stages.append(StringIndexer(inputCols=list(features.categorical), outputCols=indexed,
                                    handleInvalid="keep", stringOrderType="frequencyDesc"))
    stages.append(VectorAssembler(inputCols=indexed + list(features.numeric), outputCol=FEATURES_COL,
                                  handleInvalid="keep"))
    stages.append(SparkXGBClassifier(features_col=FEATURES_COL, label_col=LABEL_COL, num_workers=model.num_workers,
                                     random_state=model.seed, device=device, **{"verbose": False, **params}))
    return Pipeline(stages=stages)


def with_label(frame: DataFrame, features: FeatureSettings) -> DataFrame:
    """Rows that have a label, with it as a double ``label`` column and numeric features as doubles."""
    cast = [F.col(f"`{c}`").cast("double").alias(c) for c in features.numeric]
    others = [c for c in frame.columns if c not in features.numeric]
    return (frame.where(F.col(f"`{features.label}`").isNotNull())
            .select(*others, *cast)
            .withColumn(LABEL_COL, F.col(f"`{features.label}`").cast("double")))


def time_split(frame: DataFrame, features: FeatureSettings) -> tuple[DataFrame, DataFrame]:
    """Rows before ``features.split.test_from`` (training) and from it on (holdout)."""
    column = features.split.column
    split_at = F.lit(features.split.test_from).cast(frame.schema[column].dataType)
    return frame.where(F.col(column) < split_at), frame.where(F.col(column) >= split_at)


def positive_probability(predictions: DataFrame) -> DataFrame:
    return predictions.withColumn(SCORE_COL, vector_to_array(F.col("probability"))[1])


def holdout_metrics(predictions: DataFrame) -> dict[str, float]:
    """AUC, PR-AUC and log loss of ``predictions`` (which carry ``label`` and ``probability``), on the cluster."""
    scored = positive_probability(predictions)
    roc = BinaryClassificationEvaluator(labelCol=LABEL_COL, rawPredictionCol=SCORE_COL, metricName="areaUnderROC")
    pr = BinaryClassificationEvaluator(labelCol=LABEL_COL, rawPredictionCol=SCORE_COL, metricName="areaUnderPR")
    p = F.least(F.greatest(F.col(SCORE_COL), F.lit(1e-15)), F.lit(1 - 1e-15))
    row = scored.select(
        F.avg(-(F.col(LABEL_COL) * F.log(p) + (1 - F.col(LABEL_COL)) * F.log(1 - p))).alias("log_loss"),
        F.avg(LABEL_COL).alias("positive_rate"),
        F.count(F.lit(1)).alias("rows"),
    ).first()
    return {
        "auc": roc.evaluate(scored),
        "pr_auc": pr.evaluate(scored),
        "log_loss": float(row["log_loss"]),
        "positive_rate": float(row["positive_rate"]),
        "rows": float(row["rows"]),
    }
