"""Checks run before any Spark job of a training: booster parameters, device, and what barrier mode needs.

``xgboost.spark`` accepts unknown keyword arguments silently and reports bad values only from native code,
mid-job; these checks name the parameter and the fix first.
"""

from __future__ import annotations

import difflib
import shutil
import subprocess
from typing import Any, Mapping

from pyspark.sql import SparkSession

from lakeforge.errors import TrainingConfigError

REMOVED = {
    "use_gpu": "removed from xgboost; set model.device: cuda",
    "gpu_id": "removed from xgboost; set model.device: cuda (the GPU of each Spark task is assigned by Spark)",
    "n_jobs": "set by xgboost.spark from spark.task.cpus; raise spark.task.cpus instead",
    "nthread": "set by xgboost.spark from spark.task.cpus; raise spark.task.cpus instead",
}
# name -> (kind, lower bound, lower inclusive, upper bound)
RANGES: dict[str, tuple[type, float | None, bool, float | None]] = {
    "n_estimators": (int, 1, True, None),
    "max_depth": (int, 0, True, None),
    "max_leaves": (int, 0, True, None),
    "max_bin": (int, 2, True, None),
    "num_parallel_tree": (int, 1, True, None),
    "early_stopping_rounds": (int, 1, True, None),
    "learning_rate": (float, 0, False, 1),
    "subsample": (float, 0, False, 1),
    "colsample_bytree": (float, 0, False, 1),
    "colsample_bylevel": (float, 0, False, 1),
    "colsample_bynode": (float, 0, False, 1),
    "min_child_weight": (float, 0, True, None),
    "gamma": (float, 0, True, None),
    "reg_alpha": (float, 0, True, None),
    "reg_lambda": (float, 0, True, None),
    "max_delta_step": (float, 0, True, None),
}
CHOICES = {
    "tree_method": ("hist", "approx", "exact", "auto"),
    "grow_policy": ("depthwise", "lossguide"),
}


def known_params() -> set[str]:
    from xgboost import XGBClassifier
    from xgboost.spark import SparkXGBClassifier

    return set(XGBClassifier().get_params()) | {p.name for p in SparkXGBClassifier().params}


def validate_params(params: Mapping[str, Any]) -> None:
    """Every name must be an XGBoost parameter and every value in its range; the message names the fix."""
    problems = []
    known = known_params()
    for name, value in params.items():
        where = f"model.params.{name}"
        if name in REMOVED:
            problems.append(f"{where}: {REMOVED[name]}")
        elif name == "scale_pos_weight":
            if value != "auto" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                problems.append(f"{where}: expected a positive number or 'auto' (negatives / positives of the "
                                f"training split), got {value!r}")
        elif name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else "; see the XGBoost parameter list"
            problems.append(f"{where}: not an XGBoost parameter{hint}")
        elif name in RANGES:
            kind, low, inclusive, high = RANGES[name]
            ok_type = isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or isinstance(value, int))
            too_low = ok_type and low is not None and (value < low if inclusive else value <= low)
            too_high = ok_type and high is not None and value > high
            if not ok_type or too_low or too_high:
                bounds = f"{'[' if inclusive else '('}{low}, {high if high is not None else 'inf'}{']' if high is not None else ')'}"
                problems.append(f"{where}: expected {'an integer' if kind is int else 'a number'} in {bounds}, got {value!r}")
        elif name in CHOICES and value not in CHOICES[name]:
            problems.append(f"{where}: expected one of {', '.join(CHOICES[name])}, got {value!r}")
    if problems:
        raise TrainingConfigError("\n".join(problems))


def gpu_visible() -> bool:
    """Whether this machine has an NVIDIA GPU (NVML when installed, else ``nvidia-smi -L``)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount() > 0
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no NVML library or no driver: fall back to the CLI
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    return out.returncode == 0 and "GPU" in out.stdout


def resolve_device(device: str, fallback_to_cpu: bool, gpu_available: bool | None = None) -> str:
    if device != "cuda":
        return device
    if gpu_available if gpu_available is not None else gpu_visible():
        return "cuda"
    if fallback_to_cpu:
        return "cpu"
    raise TrainingConfigError("model.device is cuda but no GPU is visible on this machine (NVML and nvidia-smi find "
                              "none); set model.device: cpu, or model.fallback_to_cpu: true to train on CPU instead")


def check_cluster(spark: SparkSession, num_workers: int | str, setting: str = "model.num_workers") -> int:
    """Barrier-mode training needs every worker scheduled at once and no dynamic allocation. Returns the number
    of workers (``auto``: one per task slot); ``setting`` names the config key in messages."""
    conf = spark.sparkContext.getConf()
    if conf.get("spark.dynamicAllocation.enabled", "false").lower() == "true":
        raise TrainingConfigError(
            "spark.dynamicAllocation.enabled is true, and distributed training runs in a barrier stage that dynamic "
            "allocation can starve (dmlc/xgboost#11380); set spark.dynamicAllocation.enabled=false for training jobs "
            "(conf/<env>.yaml spark.conf)")
    slots = spark.sparkContext.defaultParallelism // max(int(conf.get("spark.task.cpus", "1")), 1)
    if num_workers == "auto":
        return max(slots, 1)
    if num_workers > slots:
        raise TrainingConfigError(
            f"{setting} is {num_workers}, but the cluster has {slots} task slot(s) and a barrier stage needs "
            f"all workers at once; lower {setting} to at most {slots} or add executors")
    return num_workers
