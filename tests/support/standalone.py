"""A real Spark standalone cluster on loopback for the tests: one master and N one-core workers, started from the
installed pyspark's own classes (``bin/spark-class ...deploy.master.Master`` / ``...deploy.worker.Worker``), each
in its own process group with its own work dir and log file, stopped in ``finally`` (executors included).

    with standalone.cluster(tmp_path, workers=2) as cluster:
        cluster.url               # spark://127.0.0.1:PORT
        cluster.master_state()    # the master's /json (workers, active and completed applications)
        cluster.kill_worker(i)    # SIGKILL the worker JVM and its executors (process group)
        cluster.replace_dead_workers()
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pyspark

from lakeforge.local_kafka import free_port  # one free-port helper for the project (test_serve imports it from here)

SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
READY_TIMEOUT_S = 120
LOG_TAIL_LINES = 40


class ClusterError(RuntimeError):
    """The cluster did not come up (the message carries the tail of every daemon's log)."""


def get_json(url: str, timeout: float = 5) -> dict | list:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen
    log: Path
    ui_port: int
    work_dir: Path | None = None
    killed: bool = False
    replaced: bool = False

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else ["(no log written)"]
        return f"--- {self.name} ({self.log}), last {lines} lines ---\n" + "\n".join(text[-lines:])

    def stop(self, sig: int = signal.SIGTERM, wait_s: float = 30) -> None:
        """Signal the daemon's whole process group (the worker's executors and their Python workers too)."""
        for s in (sig, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, s)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait_s)
                _wait_group_gone(self.process.pid, wait_s)
                break
            except subprocess.TimeoutExpired:
                continue


def _wait_group_gone(pgid: int, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise subprocess.TimeoutExpired(f"process group {pgid}", wait_s)


@dataclass
class Cluster:
    root: Path
    master: Daemon
    port: int
    worker_memory: str
    workers: list[Daemon] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def master_state(self) -> dict:
        return get_json(f"{self.master.ui}/json")

    def alive_workers(self) -> list[dict]:
        return [w for w in self.master_state()["workers"] if w["state"] == "ALIVE"]

    def logs(self) -> str:
        return "\n".join(d.tail() for d in (self.master, *self.workers))

    def start_worker(self) -> Daemon:
        n = len(self.workers)
        work_dir = self.root / f"worker-{n}"
        work_dir.mkdir(parents=True)
        ui_port = free_port()
        worker = _spawn(f"worker-{n}", self.root / f"worker-{n}.log", ui_port,
                        [WORKER_CLASS, self.url, "--host", "127.0.0.1", "--port", str(free_port()),
                         "--webui-port", str(ui_port), "--cores", "1", "--memory", self.worker_memory,
                         "--work-dir", str(work_dir)])
        worker.work_dir = work_dir
        self.workers.append(worker)
        return worker

    def wait_ready(self, workers: int, timeout_s: float = READY_TIMEOUT_S) -> dict:
        """Poll the master's /json until ``workers`` workers are ALIVE; a daemon that exits fails at once."""
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            dead = [d.name for d in (self.master, *self.workers) if not d.killed and not d.alive()]
            if dead:
                raise ClusterError(f"{', '.join(dead)} exited before the cluster was ready\n{self.logs()}")
            try:
                state = self.master_state()
                alive = [w for w in state["workers"] if w["state"] == "ALIVE"]
                if len(alive) >= workers and state.get("status") == "ALIVE":
                    return state
                last = f"{len(alive)} of {workers} workers ALIVE, master {state.get('status')}"
            except OSError as exc:
                last = f"{self.master.ui}/json: {exc}"
            time.sleep(0.5)
        raise ClusterError(f"the standalone cluster at {self.url} was not ready after {timeout_s:.0f} s "
                           f"({last})\n{self.logs()}")

    def worker_state(self, worker: Daemon) -> dict:
        """The worker's own /json: its executors (running and finished) with application and executor ids."""
        return get_json(f"{worker.ui}/json")

    def kill_worker(self, worker: Daemon) -> None:
        """SIGKILL the worker JVM and every process it started (executors, their Python workers): a lost machine."""
        worker.killed = True
        worker.stop(signal.SIGKILL)

    def replace_dead_workers(self) -> None:
        """Start a fresh worker for each killed one, so that following tests find the full cluster again."""
        for worker in [w for w in self.workers if w.killed and not w.replaced]:
            worker.replaced = True
            self.start_worker()
        self.wait_ready(sum(not w.killed for w in self.workers))

    def stop(self) -> None:
        errors = []
        for daemon in (*self.workers, self.master):
            try:
                daemon.stop()
            except Exception as exc:  # noqa: BLE001 - stop every daemon, report all failures after
                errors.append(f"{daemon.name}: {exc}")
        if errors:
            raise ClusterError("could not stop: " + "; ".join(errors))


def _daemon_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_GATEWAY", "SPARK_"))}
    env.update({
        "SPARK_HOME": str(SPARK_CLASS.parent.parent),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "384m",
        # a port already taken is an error, not a silent move to the next one (the tests poll the chosen ports)
        "SPARK_DAEMON_JAVA_OPTS": "-Dspark.port.maxRetries=0 -Dspark.ui.port.maxRetries=0",
        "PYSPARK_PYTHON": sys.executable,
    })
    return env


def _spawn(name: str, log: Path, ui_port: int, args: list[str]) -> Daemon:
    with open(log, "w") as out:
        process = subprocess.Popen([str(SPARK_CLASS), *args], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=_daemon_env(), start_new_session=True)
    return Daemon(name, process, log, ui_port)


@contextmanager
def cluster(root: Path, workers: int = 2, worker_memory: str = "1536m") -> Iterator[Cluster]:
    """Master + ``workers`` one-core workers under ``root`` (logs and work dirs); everything stopped on exit."""
    root.mkdir(parents=True, exist_ok=True)
    port, ui_port = free_port(), free_port()
    master = _spawn("master", root / "master.log", ui_port,
                    [MASTER_CLASS, "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port)])
    running = Cluster(root, master, port, worker_memory)
    try:
        for _ in range(workers):
            running.start_worker()
        running.wait_ready(workers)
        yield running
    finally:
        running.stop()
