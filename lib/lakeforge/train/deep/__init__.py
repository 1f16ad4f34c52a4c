"""Deep learning on Spark: a PyTorch tabular network trained data-parallel by Horovod (``horovod.spark.run``)
or by PySpark's ``TorchDistributor``, behind one trainer (``model.framework: torch``, ``model.deep``).

``fit.py`` checks backend, GPU and cluster before any Spark job and launches ``worker.run_training`` on
``num_processes`` barrier tasks; ``FittedNetwork`` (a ``models.TrainedModel``) scores DataFrames on the cluster
and logs itself as an MLflow pyfunc; ``data.py`` stages the training split and fits the preprocessing;
``model.py`` holds the network; ``trainer.py`` drives a training run (staging, search, MLflow records).
This file only re-exports.
"""

from lakeforge.errors import DeepTrainingError
from lakeforge.paths import training_checkpoint_path as checkpoint_folder
from lakeforge.train.deep.fit import FittedNetwork, check_deep, fit_network, with_params

__all__ = ["DeepTrainingError", "FittedNetwork", "check_deep", "checkpoint_folder", "fit_network", "with_params"]
