"""What a model is to lakeforge: the one protocol train, score and monitor meet a model through.

A ``FittedModel`` knows its task and scores a DataFrame: the rows come back with one more column, ``SCORE``
(``_score``): the probability of class 1 for a classifier, the predicted value for a regressor. Every model
lakeforge fits or loads implements it: the Spark ML pipeline with ``xgboost.spark`` (``models.pipeline``), the
torch network (``train.deep.FittedNetwork``) and a registered pyfunc (``models.pyfunc``). A ``TrainedModel``, what
a training run holds before logging, also names its feature importance and logs itself to MLflow.

Tables name the score by the task's meaning: the predictions table's ``probability`` (classifier) or
``prediction`` (regressor) column (``output_column``), which is also the profile's name for the model's output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo
    from pyspark.sql import DataFrame

Task = Literal["classification", "regression"]
SCORE = "_score"
TASKS: tuple[Task, ...] = ("classification", "regression")


def output_column(task: str) -> str:
    """The predictions table's column holding the model's output for ``task``."""
    return "probability" if task == "classification" else "prediction"


@runtime_checkable
class FittedModel(Protocol):
    """A model that scores DataFrames on the cluster."""

    @property
    def task(self) -> Task:
        """``classification`` or ``regression``."""

    def score(self, frame: DataFrame, keep: list[str] | None = None) -> DataFrame:
        """The ``keep`` columns of ``frame`` (all of them by default) plus ``SCORE``."""


@runtime_checkable
class TrainedModel(FittedModel, Protocol):
    """A model fitted in this run, before it is logged."""

    def importance(self) -> dict[str, float] | None:
        """Importance per input feature, highest first; None when the model has no such measure."""

    def log_model(self, *, signature, input_example, pip_requirements: list[str]) -> ModelInfo:
        """Log the model to the active MLflow run under the artifact name ``model``."""
