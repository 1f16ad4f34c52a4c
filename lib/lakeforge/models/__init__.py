"""The model layer below train, score and monitor: what a model is (``protocol``), the Spark pipeline and pyfunc
models (``pipeline``, ``pyfunc``), loading a registered version (``load``), the MLflow registry (``registry``) and
the baseline profile logged with every trained model (``profile``). This package only re-exports."""

from lakeforge.models.protocol import SCORE, TASKS, FittedModel, Task, TrainedModel, output_column

__all__ = ["SCORE", "TASKS", "FittedModel", "Task", "TrainedModel", "output_column"]
