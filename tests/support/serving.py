"""A small registered model with a Spark-free serving artifact, made without Spark (xgboost's own training on
seeded rows), and ``lakeforge serve`` as a subprocess on a free loopback port, for the service's tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path

import mlflow
import numpy as np
import xgboost
from mlflow.tracking import MlflowClient

from lakeforge.models.serving import SERVING_URI_TAG, ServingSpec, log_serving_model, write_xgboost

CARRIERS = ["UA", "AA", "DL"]
SPEC = ServingSpec(
    task="classification", kind="xgboost",
    inputs={"carrier": "string", "tailnum": "string", "distance": "double", "sched_dep_time": "int"},
    derived={"sched_dep_hour": ("floor(sched_dep_time / 100)", "bigint")},
    categorical=("carrier", "tailnum"), numeric=("distance", "sched_dep_hour"),
    labels={"carrier": CARRIERS, "tailnum": []}, threshold=0.5, hashed=("tailnum",))


def booster(seed: int, rounds: int = 8) -> xgboost.Booster:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.integers(0, 4, 400), np.zeros(400), rng.uniform(100, 3000, 400), rng.integers(5, 23, 400)])
    y = ((x[:, 3] > 15) ^ (x[:, 0] == 1)).astype(float)
    return xgboost.train({"objective": "binary:logistic", "max_depth": 3, "seed": seed},
                         xgboost.DMatrix(x.astype(np.float32), label=y), num_boost_round=rounds)


def register(tracking_uri: str, name: str, folder: Path, seed: int, *, broken: bool = False,
             alias: str | None = "champion") -> int:
    """Log a serving model (``broken``: its booster file replaced by garbage) in a run, register it as a version of
    ``name`` with the serving tag, and point ``alias`` at it; the version."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri, tracking_uri)
    target = write_xgboost(folder, SPEC, booster(seed))
    if broken:
        (target / "booster.ubj").write_bytes(b"not a booster")
    if client.get_experiment_by_name("serve-tests") is None:  # artifacts beside the store, not in ./mlruns
        client.create_experiment("serve-tests", artifact_location=(folder.parent / "artifacts").as_uri())
    mlflow.set_experiment("serve-tests")
    with mlflow.start_run() as run:
        uri = log_serving_model(target, "xgboost")
    with contextlib.suppress(Exception):
        client.create_registered_model(name)
    version = client.create_model_version(name, uri, run.info.run_id, tags={SERVING_URI_TAG: uri})
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return int(version.version)


class Server:
    """``lakeforge serve`` in a subprocess: ``url`` once it listens, ``call()`` over HTTP, ``stop()`` with SIGTERM."""

    def __init__(self, conf_dir: Path, env: str, extra_env: dict[str, str], timeout: float = 120):
        cmd = [str(Path(sys.executable).parent / "lakeforge"), "serve", "--env", env, "--conf-dir", str(conf_dir),
               "--port", "0"]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, **extra_env})
        self.lines: deque[str] = deque(maxlen=400)
        self.announced: dict | None = None
        ready = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))
                if self.announced is None and line.startswith('{"serving"'):
                    self.announced = json.loads(line)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or self.announced is None:
            self.stop()
            raise AssertionError("lakeforge serve did not start:\n" + "\n".join(self.lines))
        self.url = self.announced["url"]

    def call(self, method: str, path: str, body: bytes | dict | None = None, token: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict, dict[str, str]]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            **({"Authorization": f"Bearer {token}"} if token else {}),
            **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw, status, got = response.read(), response.status, dict(response.headers)
        except urllib.error.HTTPError as error:
            raw, status, got = error.read(), error.code, dict(error.headers)
        try:
            parsed = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            parsed = {"text": raw.decode()}
        return status, parsed, got

    def wait_for(self, predicate, timeout: float = 60, every: float = 0.2):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(every)
        raise AssertionError("timed out; server output:\n" + "\n".join(self.lines))

    def log_after(self, *texts: str, timeout: float = 30) -> str:
        """The server's output once every one of ``texts`` is in it: the reader thread takes lines a moment after the
        server writes them, so a test that reads the log right after a response must wait for it."""
        def complete() -> str:
            log = "\n".join(self.lines)
            return log if all(text in log for text in texts) else ""

        return self.wait_for(complete, timeout=timeout)

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
