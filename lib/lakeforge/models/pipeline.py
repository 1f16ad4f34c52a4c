"""The Spark ML pipeline lakeforge fits (StringIndexer -> VectorAssembler -> ``xgboost.spark`` model) as a
``FittedModel``, scored one of two ways (``score.method``):

* ``transform``: the pipeline's own Spark transform (xgboost.spark's pandas UDF over the assembled vectors);
* ``map_in_arrow``: the indexers run in the JVM, then Arrow batches of the plain feature columns go to the
  booster's ``inplace_predict`` (``mapInArrow``: not even a pandas conversion), skipping the vector column.

Both give the same numbers (the assembler keeps nulls as NaN, xgboost's missing value); ``bench/score.py``
measures which is faster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.errors import InputError
from lakeforge.models.protocol import SCORE, Task

INDEXED_SUFFIX = "__idx"  # a categorical column's index, as the pipeline's StringIndexer names it


def _quoted(names: list[str]) -> list:
    return [F.col(f"`{c}`") for c in names]


@dataclass(frozen=True)
class SparkPipelineModel:
    """A fitted lakeforge pipeline; ``method`` picks how it scores (see the module's doc)."""

    pipeline: PipelineModel
    task: Task
    method: Literal["transform", "map_in_arrow"] = "transform"

    def score(self, frame: DataFrame, keep: list[str] | None = None) -> DataFrame:
        keep = list(frame.columns) if keep is None else list(keep)
        if self.method == "map_in_arrow":
            return self._score_arrow(frame, keep)
        out = self.pipeline.transform(frame)
        value = vector_to_array(F.col("probability"))[1] if self.task == "classification" else F.col("prediction")
        return out.select(*_quoted(keep), value.cast("double").alias(SCORE))

    def importance(self, importance_type: str = "gain") -> dict[str, float]:
        """XGBoost's importance keyed by the pipeline's input columns (the assembler's f0, f1, ... in order)."""
        *_, assembler, xgb_model = self.pipeline.stages
        names = [c.removesuffix(INDEXED_SUFFIX) for c in assembler.getInputCols()]
        named = {}
        for key, value in xgb_model.get_booster().get_score(importance_type=importance_type).items():
            index = int(key[1:]) if key.startswith("f") and key[1:].isdigit() else None
            named[names[index] if index is not None and index < len(names) else key] = float(value)
        return dict(sorted(named.items(), key=lambda kv: -kv[1]))

    def log_model(self, *, signature, input_example, pip_requirements: list[str]):
        import mlflow.spark

        return mlflow.spark.log_model(self.pipeline, "model", signature=signature, input_example=input_example,
                                      pip_requirements=pip_requirements)

    def _score_arrow(self, frame: DataFrame, keep: list[str]) -> DataFrame:
        """The ``keep`` columns plus ``SCORE`` through the booster on Arrow batches: feature columns become one
        float32 matrix for ``inplace_predict``; the kept columns pass through untouched, never as pandas."""
        *indexers, assembler, xgb_model = self.pipeline.stages
        if not isinstance(assembler, VectorAssembler):
            raise InputError("score.method map_in_arrow expects ... -> VectorAssembler -> xgboost; got "
                             f"{type(assembler).__name__}; use score.method: transform")
        inputs = list(assembler.getInputCols())
        indexed = PipelineModel(stages=indexers).transform(frame) if indexers else frame
        shared = frame.sparkSession.sparkContext.broadcast(bytes(xgb_model.get_booster().save_raw("ubj")))
        schema = indexed.select(*_quoted(keep)).schema.add(SCORE, "double")

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
                                                 names=[*keep, SCORE])

        return indexed.select(*_quoted(list(dict.fromkeys([*keep, *inputs])))).mapInArrow(predict, schema)
