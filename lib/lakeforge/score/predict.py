"""Two ways to apply a fitted lakeforge pipeline (StringIndexer -> VectorAssembler -> xgboost.spark model):

* ``transform``: the pipeline's own Spark transform (xgboost.spark's pandas UDF over the assembled vectors), or,
  for a model logged only as a pyfunc (the torch network), MLflow's ``spark_udf``;
* ``map_in_arrow``: the indexers run in the JVM, then Arrow batches of the plain feature columns go to the
  booster's ``inplace_predict`` (``mapInArrow``: not even a pandas conversion), skipping the vector column.

Both give the same numbers (the assembler keeps nulls as NaN, xgboost's missing value); ``bench/score.py``
measures which is faster, and ``score.method`` picks one.
"""

from __future__ import annotations

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.errors import InputError
from lakeforge.train.estimator import SCORE_COL, scored_frame

PREDICTION = "raw_prediction"


def predict_transform(fitted, frame: DataFrame, classify: bool) -> DataFrame:
    """``frame`` plus ``raw_prediction``: P(class 1) of a classifier, the value of a regressor; ``fitted`` is a
    Spark pipeline or a registered pyfunc (``registry.PyfuncModel``)."""
    scored = scored_frame(fitted, frame, classify)
    return scored.withColumn(PREDICTION, F.col(SCORE_COL if classify else "prediction"))


def predict_map_in_arrow(fitted: PipelineModel, frame: DataFrame, classify: bool, keep: list[str]) -> DataFrame:
    """The ``keep`` columns of ``frame`` plus ``raw_prediction``, through the booster on Arrow batches.

    The batches stay Arrow end to end (``mapInArrow``): feature columns become one float32 matrix for
    ``inplace_predict``, and the kept columns pass through untouched, never converted to pandas.
    """
    *indexers, assembler, xgb_model = fitted.stages
    if not isinstance(assembler, VectorAssembler):
        raise InputError(f"map_in_arrow scoring expects ... -> VectorAssembler -> xgboost; got {type(assembler).__name__}")
    inputs = list(assembler.getInputCols())
    indexed = PipelineModel(stages=indexers).transform(frame) if indexers else frame
    booster_bytes = bytes(xgb_model.get_booster().save_raw("ubj"))
    shared = frame.sparkSession.sparkContext.broadcast(booster_bytes)
    schema = indexed.select(*keep).schema.add(PREDICTION, "double")

    def predict(batches):
        import pyarrow as pa
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(bytearray(shared.value))
        for batch in batches:
            if batch.num_rows == 0:
                continue
            x = np.empty((batch.num_rows, len(inputs)), dtype=np.float32)
            for i, name in enumerate(inputs):  # nulls become NaN, xgboost's missing value
                x[:, i] = batch.column(name).to_numpy(zero_copy_only=False)
            values = np.asarray(booster.inplace_predict(x, missing=np.nan), dtype=np.float64)
            yield pa.RecordBatch.from_arrays([*(batch.column(c) for c in keep), pa.array(values)],
                                             names=[*keep, PREDICTION])

    columns = [F.col(f"`{c}`") for c in dict.fromkeys([*keep, *inputs])]
    return indexed.select(*columns).mapInArrow(predict, schema)
