"""Deep-learning benchmark: epoch time of the torch network at 1 and 2 processes on the demo's gold table, for
each backend (TorchDistributor, and Horovod when it is built), and the scaling efficiency T1 / (2 x T2).

    .venv/bin/python bench/dl.py [--epochs 3] [--backends torch_distributor horovod] [--use-gpu] [--output PATH]

The training split is staged once (as training does); every configuration trains the same network on it for the
same number of epochs, one thread per process. Epoch time is the median over the epochs after the first (the
first also pays for reading the share); the launch overhead is the fit's wall time minus its epochs.
Results go to bench/results/dl.json (dl_gpu.json with --use-gpu).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import ROOT, bench_session, bench_settings, demo_gold

from lakeforge.config import DeepSettings  # noqa: E402
from lakeforge.features import entity_key  # noqa: E402
from lakeforge.train.deep import fit_network  # noqa: E402
from lakeforge.train.deep.data import VALIDATION, fit_preprocessing, stage_training_table  # noqa: E402
from lakeforge.train.estimator import with_label  # noqa: E402
from lakeforge.train.splits import holdout_split, validation_flag  # noqa: E402


def _with_gpu_resources(settings, workdir: Path):
    """GPUs as Spark resources for a local master (a discovery script that asks nvidia-smi); two processes share
    one GPU where the machine has only one."""
    import subprocess

    count = len(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout.splitlines())
    script = workdir / "gpus.py"
    script.write_text("#!/usr/bin/env python3\nimport json, subprocess\n"
                      "ids = subprocess.run(['nvidia-smi', '--query-gpu=index', '--format=csv,noheader'], "
                      "capture_output=True, text=True).stdout.split()\n"
                      "print(json.dumps({'name': 'gpu', 'addresses': ids}))\n")
    script.chmod(0o755)
    conf = {"spark.driver.resource.gpu.amount": str(count), "spark.driver.resource.gpu.discoveryScript": str(script),
            "spark.task.resource.gpu.amount": "1" if count >= 2 else "0.5"}
    return settings.model_copy(update={"spark": settings.spark.model_copy(update={"conf": {**settings.spark.conf, **conf}})})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["torch_distributor", "horovod"])
    parser.add_argument("--use-gpu", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    output = Path(args.output or ROOT / "bench" / "results" / ("dl_gpu.json" if args.use_gpu else "dl.json"))
    backends = [b for b in args.backends if b != "horovod" or importlib.util.find_spec("horovod.spark")]
    skipped = sorted(set(args.backends) - set(backends))

    workdir = Path(tempfile.mkdtemp(prefix="lakeforge-bench-dl-"))
    settings = bench_settings(workdir, "bench-dl", framework="torch")
    if args.use_gpu:  # TorchDistributor schedules GPUs as Spark resources: in local mode the driver's
        settings = _with_gpu_resources(settings, workdir)
    spark = bench_session(settings)
    try:
        gold = demo_gold(spark, settings)
        features, model = settings.features, settings.model
        key = entity_key(settings)
        frame = with_label(spark.read.format("delta").option("versionAsOf", gold.version).load(gold.path), features)
        train, _, _ = holdout_split(frame, features, key, model.seed, True)
        flagged = train.withColumn(VALIDATION, validation_flag(train, features, 0.2, key, model.seed, True))
        pre = fit_preprocessing(flagged.where(~flagged[VALIDATION]), features, "classification", 1000)
        staged = stage_training_table(flagged, features, None, str(workdir / "staged"), files=8)
        results = []
        for backend in backends:
            for processes in (1, 2):
                deep = DeepSettings(backend=backend, num_processes=processes, use_gpu=args.use_gpu,
                                    max_epochs=args.epochs, patience=args.epochs)
                started = time.perf_counter()
                fitted = fit_network(spark, deep, staged, pre, seed=model.seed,
                                     checkpoint_dir=str(workdir / "checkpoints" / f"{backend}-{processes}"))
                wall = time.perf_counter() - started
                epochs = [h["seconds"] for h in fitted.history]
                steady = statistics.median(epochs[1:] or epochs)
                results.append({"backend": backend, "processes": processes, "epoch_seconds": epochs,
                                "epoch_seconds_median": steady, "fit_wall_seconds": wall,
                                "launch_overhead_seconds": wall - sum(epochs),
                                "validation_loss": fitted.history[-1]["validation_loss"]})
                print(f"{backend:18s} {processes} process(es): epoch {steady:.2f} s, fit {wall:.1f} s", flush=True)
        efficiency = {}
        for backend in backends:
            t1, t2 = (next(r["epoch_seconds_median"] for r in results if r["backend"] == backend and r["processes"] == p)
                      for p in (1, 2))
            efficiency[backend] = t1 / (2 * t2)
            print(f"{backend}: scaling efficiency T1 / (2 x T2) = {efficiency[backend]:.2f}")
        report = {"train_rows": staged.train_rows, "validation_rows": staged.validation_rows,
                  "epochs": args.epochs, "batch_size": DeepSettings().batch_size, "use_gpu": args.use_gpu,
                  "backends_skipped": skipped, "results": results, "scaling_efficiency": efficiency,
                  "cores": spark.sparkContext.defaultParallelism}
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {output}")
    finally:
        spark.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
