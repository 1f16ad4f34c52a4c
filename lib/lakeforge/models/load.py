"""A registered model loaded back as a ``FittedModel``."""

from __future__ import annotations

import mlflow
import mlflow.spark

from lakeforge.models.pipeline import SparkPipelineModel
from lakeforge.models.protocol import FittedModel
from lakeforge.models.pyfunc import PyfuncModel


def load_registered(model_uri: str, task: str, method: str = "transform") -> FittedModel:
    """A ``SparkPipelineModel`` for models logged with the spark flavour (scored by ``method``), otherwise a
    ``PyfuncModel`` over the signature's input columns."""
    info = mlflow.models.get_model_info(model_uri)
    if "spark" in info.flavors:
        return SparkPipelineModel(mlflow.spark.load_model(model_uri), task, method)
    return PyfuncModel(model_uri, task, tuple(spec["name"] for spec in info.signature.inputs.to_dict()))
