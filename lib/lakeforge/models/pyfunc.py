"""A registered model that only has MLflow's python_function flavour (the torch network) as a ``FittedModel``:
applied to a DataFrame with MLflow's ``spark_udf`` in the current environment, over the signature's inputs."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.models.protocol import SCORE, Task


@dataclass(frozen=True)
class PyfuncModel:
    uri: str
    task: Task
    inputs: tuple[str, ...]

    def score(self, frame: DataFrame, keep: list[str] | None = None) -> DataFrame:
        import mlflow.pyfunc

        udf = mlflow.pyfunc.spark_udf(frame.sparkSession, self.uri, result_type="double", env_manager="local")
        keep = list(frame.columns) if keep is None else list(keep)
        return frame.select(*[F.col(f"`{c}`") for c in keep], udf(*self.inputs).alias(SCORE))
