"""Online scoring benchmark: ``lakeforge serve`` on loopback against the same serving model called in-process.

    .venv/bin/python bench/serve.py [--seconds 8] [--concurrency 1 8 32] [--records 1 100]

The model is the demo's champion, trained here by lakeforge on the bundled data (200 trees, depth 6, no search),
with its Spark-free serving model; the records are gold rows (their raw inputs). The server is a real
``lakeforge serve`` subprocess (API key, record checks, metrics and the inference log on); the clients are threads
with keep-alive connections in this process, on the same machine. For each request size and concurrency: latency
p50 / p99 and throughput; the baseline is the same model's ``columns_from_records`` + ``score`` in this process,
one thread, the same request sizes (the limit: no HTTP, no JSON, no auth). Results: bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from common import ROOT, bench_session, bench_settings, demo_gold

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from lakeforge.config import SearchSettings  # noqa: E402
from lakeforge.models.registry import mlflow_client  # noqa: E402
from lakeforge.models.serving import SERVING_URI_TAG, SPEC_FILE, ServingModel, columns_from_records  # noqa: E402
from lakeforge.serve.auth import key_hash  # noqa: E402
from lakeforge.tables import Table  # noqa: E402
from lakeforge.train import train_model  # noqa: E402
from lakeforge.train.serving import serving_inputs  # noqa: E402

KEY = "lf_bench-0123456789"


def train_champion(workdir: Path, sample: int) -> tuple[dict, list[dict]]:
    settings = bench_settings(workdir, "bench-serve", params={"n_estimators": 200, "max_depth": 6},
                              search=SearchSettings(strategy="none"))
    spark = bench_session(settings)
    try:
        gold = demo_gold(spark, settings)
        result = train_model(spark, settings, gold, promote="always")
        frame = Table.of(gold.path).read(spark, gold.version)
        inputs = list(serving_inputs(settings, frame.schema)[0])
        rows = frame.select(*inputs).limit(sample).toPandas()
    finally:
        spark.stop()
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return {"settings": settings, "version": result.model_version}, records


def start_server(workdir: Path, settings) -> tuple[subprocess.Popen, str]:
    conf = workdir / "conf"
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree(ROOT / "conf", conf)
    (conf / "bench_serve.yaml").write_text(yaml.safe_dump({
        "extends": "local",
        "storage": {"root": settings.storage.root, "landing": settings.storage.landing},
        "mlflow": {"tracking_uri": settings.mlflow.tracking_uri, "experiment": settings.mlflow.experiment},
        "serve": {"max_records": 100, "rate_limit": {"per_second": 1e9, "burst": 1_000_000},
                  "api_keys": [{"name": "bench", "sha256": key_hash(KEY)}], "api_keys_file": None},
    }))
    cmd = [str(Path(sys.executable).parent / "lakeforge"), "serve", "--env", "bench_serve", "--conf-dir", str(conf),
           "--port", "0", "--log-level", "WARNING"]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "LAKEFORGE_PII_KEY": "benchmark-key"})
    for line in process.stdout:
        if line.startswith('{"serving"'):
            announced = json.loads(line)
            assert announced["ready"], announced
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process, announced["url"]
    raise RuntimeError("lakeforge serve did not start")


def load(url: str, model: str, bodies: list[bytes], concurrency: int, seconds: float) -> dict:
    """``concurrency`` threads, each on its own keep-alive connection, sending ``bodies`` round robin."""
    target = urlparse(url)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    start_at, stop_at = time.perf_counter() + 1.0, time.perf_counter() + 1.0 + seconds  # 1 s warm-up
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def client(i: int) -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        n = i
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                break
            connection.request("POST", f"/v1/models/{model}/predict", bodies[n % len(bodies)], headers)
            response = connection.getresponse()
            response.read()
            ended = time.perf_counter()
            if response.status != 200:
                errors[i] += 1
            elif began >= start_at:
                latencies[i].append(ended - began)
            n += concurrency
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = np.array([x for per in latencies for x in per])
    return {"requests": int(len(flat)), "errors": int(sum(errors)), "requests_per_s": len(flat) / seconds,
            "p50_ms": float(np.percentile(flat, 50) * 1e3), "p99_ms": float(np.percentile(flat, 99) * 1e3)}


def in_process(model: ServingModel, chunks: list[list[dict]], seconds: float) -> dict:
    done, started, n = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        records = chunks[n % len(chunks)]
        model.score(columns_from_records(model.spec, records), len(records))
        done, n = done + 1, n + 1
    elapsed = time.perf_counter() - started
    return {"requests": done, "requests_per_s": done / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--records", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lakeforge-bench-serve-"))
    trained, records = train_champion(workdir, 2000)
    settings = trained["settings"]
    client = mlflow_client(settings.mlflow)
    version = client.get_model_version(settings.model.registered_name, str(trained["version"]))
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(version.tags[SERVING_URI_TAG], dst_path=str(workdir / "model")))
    model = ServingModel.load(next(local.rglob(SPEC_FILE)).parent)
    process, url = start_server(workdir, settings)
    results = {"machine": f"{os.cpu_count()} cores", "seconds_per_point": args.seconds,
               "model_version": trained["version"], "points": []}
    try:
        for size in args.records:
            chunks = [records[i:i + size] for i in range(0, len(records) - size + 1, size)][:200]
            bodies = [json.dumps({"records": chunk}).encode() for chunk in chunks]
            limit = in_process(model, chunks, args.seconds)
            for concurrency in args.concurrency:
                point = {"records_per_request": size, "concurrency": concurrency,
                         **load(url, settings.model.registered_name, bodies, concurrency, args.seconds),
                         "in_process_requests_per_s": limit["requests_per_s"]}
                point["throughput_vs_in_process"] = point["requests_per_s"] / limit["requests_per_s"]
                results["points"].append(point)
                print(json.dumps(point), flush=True)
    finally:
        process.terminate()
        process.wait(60)
    out = ROOT / "bench" / "results" / "serve.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
