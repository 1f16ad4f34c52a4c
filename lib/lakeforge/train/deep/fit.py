"""Deep learning on Spark: a PyTorch tabular network trained data-parallel by Horovod (``horovod.spark.run``)
or by PySpark's ``TorchDistributor``, behind one trainer (``model.framework: torch``, ``model.deep``).

The driver checks backend, GPU and cluster before any Spark job, fits the preprocessing on the training split,
stages the split as a pinned Delta version, and launches ``worker.run_training`` on ``num_processes`` barrier
tasks. What comes back is rank 0's best weights and history; ``FittedNetwork`` scores DataFrames on the cluster
(``mapInArrow``) and logs itself as an MLflow pyfunc that carries its preprocessing.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType

from lakeforge.config import DeepSettings
from lakeforge.errors import DeepTrainingError
from lakeforge.models import SCORE
from lakeforge.train.checks import TrainingConfigError, check_cluster, gpu_visible

log = logging.getLogger(__name__)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_deep(spark: SparkSession, deep: DeepSettings, gpu_available: bool | None = None) -> int:
    """Backend installed, GPU visible when asked for, enough task slots for a barrier stage; before any job."""
    if not _installed("torch"):
        raise TrainingConfigError(
            f"model.framework is torch, but PyTorch is not installed in {sys.executable}; install the dl extra: "
            "pip install -c constraints.txt -e '.[dl]' (make setup does)")
    if deep.backend == "horovod" and not (_installed("horovod.torch") and _installed("horovod.spark")):
        raise TrainingConfigError(
            f"model.deep.backend is horovod, but horovod (with its torch and spark parts) is not installed in "
            f"{sys.executable}; build it with `make horovod` (horovod 0.28.1 from source with gloo, see README), "
            "or set model.deep.backend: torch_distributor")
    if deep.use_gpu and not (gpu_visible() if gpu_available is None else gpu_available):
        raise TrainingConfigError("model.deep.use_gpu is true, but no GPU is visible here (nvidia-smi finds none); "
                                  "set model.deep.use_gpu: false to train on CPU, or run on a GPU cluster")
    return check_cluster(spark, deep.num_processes, setting="model.deep.num_processes")


def _remove_folder(folder: str) -> None:
    from lakeforge.train.deep.data import filesystem_for

    filesystem, root = filesystem_for(folder)
    if filesystem.get_file_info(root).type.name == "Directory":
        filesystem.delete_dir(root)


@dataclass
class FittedNetwork:
    """The trained network (rank 0's best weights) and how it got there."""

    preprocessing: Any
    net_spec: Any
    state: dict
    history: list[dict]
    checksums: list[float]
    resumed_from: int
    backend: str
    world_size: int
    fit_seconds: float

    @property
    def task(self) -> str:
        return self.preprocessing.task

    def importance(self) -> None:
        """The network has no per-feature importance measure."""
        return None

    def score(self, frame: DataFrame, keep: list[str] | None = None) -> DataFrame:
        """The ``keep`` columns of ``frame`` (all by default) plus ``SCORE``: P(class 1) of a classifier, the value
        of a regressor; on the cluster (``mapInArrow``)."""
        import torch

        output = SCORE
        keep = list(frame.columns) if keep is None else list(keep)
        buffer = io.BytesIO()
        torch.save(self.state, buffer)
        shared = frame.sparkSession.sparkContext.broadcast(
            (self.preprocessing.to_json(), self.net_spec.to_json(), buffer.getvalue()))
        inputs = [*self.preprocessing.categorical, *self.preprocessing.numeric]
        source = frame.select(*[F.col(f"`{c}`") for c in dict.fromkeys([*keep, *inputs])])
        schema = StructType([*(source.schema[c] for c in keep), StructField(output, DoubleType())])

        def predict(batches):
            import pyarrow as pa
            import torch

            from lakeforge.models.network import (
                NetSpec,
                Preprocessing,
                load_network,
                predict_numpy,
            )

            pre_json, spec_json, weights = shared.value
            pre = Preprocessing.from_json(pre_json)
            torch.set_num_threads(1)
            net = load_network(NetSpec.from_json(spec_json), torch.load(io.BytesIO(weights), weights_only=True))
            for batch in batches:
                cats, nums = pre.encode({c: batch.column(c) for c in inputs})
                values = predict_numpy(net, pre, cats, nums)
                yield pa.RecordBatch.from_arrays([*(batch.column(c) for c in keep), pa.array(values, pa.float64())],
                                                 names=[*keep, output])

        return source.mapInArrow(predict, schema)

    def log_model(self, *, signature, input_example, pip_requirements: list[str]):
        """Log as an MLflow pyfunc (weights, preprocessing and architecture as artifacts)."""
        import mlflow
        import torch

        from lakeforge.models.network import TabularPyfunc

        folder = Path(tempfile.mkdtemp(prefix="lakeforge-net-"))
        try:
            torch.save(self.state, folder / "weights.pt")
            (folder / "preprocessing.json").write_text(self.preprocessing.to_json())
            (folder / "net_spec.json").write_text(self.net_spec.to_json())
            return mlflow.pyfunc.log_model(
                name="model", python_model=TabularPyfunc(),
                artifacts={"weights": str(folder / "weights.pt"), "preprocessing": str(folder / "preprocessing.json"),
                           "net_spec": str(folder / "net_spec.json")},
                signature=signature, input_example=input_example,
                pip_requirements=pip_requirements)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _launch(spark: SparkSession, deep: DeepSettings, spec: dict[str, Any]) -> dict[str, Any]:
    from lakeforge.train.deep.worker import run_training

    if deep.backend == "horovod":
        import horovod.spark

        results = horovod.spark.run(run_training, args=(spec,), num_proc=deep.num_processes, use_gloo=True,
                                    use_mpi=False, start_timeout=deep.timeout_seconds, verbose=1)
        return sorted(results, key=lambda r: r["rank"])[0]
    from pyspark.ml.torch.distributor import TorchDistributor

    return TorchDistributor(num_processes=deep.num_processes, local_mode=False, use_gpu=deep.use_gpu).run(
        run_training, spec)


def fit_network(spark: SparkSession, deep: DeepSettings, staged, preprocessing, *, seed: int,
                checkpoint_dir: str, clean_checkpoints: bool = True) -> FittedNetwork:
    """Train on the staged table with ``deep``'s architecture and optimiser settings (already merged with any
    searched values). Checkpoints go to ``checkpoint_dir``; they are removed after a successful run unless
    ``clean_checkpoints`` is false."""
    from lakeforge.models.network import NetSpec

    net_spec = NetSpec(tuple(preprocessing.cardinalities), len(preprocessing.numeric), deep.embedding_dim,
                       deep.hidden_units, deep.hidden_layers, deep.dropout)
    spec = {
        "backend": deep.backend, "use_gpu": deep.use_gpu, "seed": seed, "files": staged.files,
        "train_rows": staged.train_rows, "preprocessing": preprocessing.to_json(), "net_spec": net_spec.to_json(),
        "learning_rate": deep.learning_rate, "weight_decay": deep.weight_decay, "batch_size": deep.batch_size,
        "max_epochs": deep.max_epochs, "patience": deep.patience, "read_batch_rows": deep.read_batch_rows,
        "checkpoint_dir": checkpoint_dir,
        "threads_per_process": int(spark.sparkContext.getConf().get("spark.task.cpus", "1")),
    }
    started = time.perf_counter()
    try:
        result = _launch(spark, deep, spec)
    except Exception as exc:  # noqa: BLE001 - both backends raise their own types; keep them as the cause
        raise DeepTrainingError(f"{deep.backend} training with {deep.num_processes} processes failed (checkpoints "
                                f"kept in {checkpoint_dir}; rerun to resume): {exc}") from exc
    elapsed = time.perf_counter() - started
    if result.get("best_state") is None:
        raise DeepTrainingError(f"{deep.backend} training finished without a completed epoch; raise model.deep.max_epochs")
    if clean_checkpoints:
        _remove_folder(checkpoint_dir)
    log.info("%s trained %d epochs on %d processes in %.1f s (resumed from epoch %d)", deep.backend,
             len(result["history"]), result["world_size"], elapsed, result["resumed_from"])
    return FittedNetwork(preprocessing, net_spec, result["best_state"], result["history"], result["checksums"],
                         result["resumed_from"], deep.backend, result["world_size"], elapsed)


def with_params(deep: DeepSettings, params: dict[str, Any]) -> DeepSettings:
    """``deep`` with searched values (validated by the settings model again)."""
    return DeepSettings.model_validate({**deep.model_dump(), **params}) if params else deep

