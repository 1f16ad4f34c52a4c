"""What each job used and what it would cost: Spark's own task and executor metrics, read back from the
application's event log, priced from the table in ``cost:`` and appended to the ``job_runs`` Delta table (and
to the MLflow run of a training job).

Spark writes the event log (``spark.eventLog.*``, set from ``spark.event_log_dir``) on any file system it can
write: a local folder, HDFS on EMR, S3. lakeforge reads it back with Spark itself, so the same code works on a
laptop and a cluster. The metrics are those of the tasks that finished while the job ran:

* executor core-seconds: cores of every executor x the time it was alive during the job (what is paid for);
* task seconds / CPU seconds: ``Executor Run Time`` / ``Executor CPU Time`` summed over tasks;
* input, output, shuffle read and shuffle write bytes.

Estimated cost = executor core-seconds / 3600 / vCPUs of ``cost.instance_type`` x its hourly price for
``cost.capacity`` (on_demand or spot). The driver is not counted (on EMR and Databricks it is one instance
for the whole job; add it to the price of the instance type if you want it in).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.config import Settings
from lakeforge.liveness import HOST, orphaned
from lakeforge.logs import kv
from lakeforge.paths import job_runs_table
from lakeforge.spark import session_conf
from lakeforge.tables import retry_on_conflict

log = logging.getLogger(__name__)

SCHEMA = ("run_id string, job string, env string, app_id string, status string, started_at timestamp, "
          "finished_at timestamp, wall_seconds double, tasks long, executor_core_seconds double, task_seconds double, "
          "cpu_seconds double, input_bytes long, output_bytes long, shuffle_read_bytes long, shuffle_write_bytes long, "
          "instance_type string, capacity string, estimated_cost double, currency string, mlflow_run_id string, "
          "note string, host string, pid long")


@dataclass
class JobRun:
    """One job's run; ``mlflow_run_id`` may be set by the job so the cost lands on its MLflow run too."""

    job: str
    env: str
    app_id: str
    started: float
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    mlflow_run_id: str | None = None
    status: str = "running"
    metrics: dict[str, float] = field(default_factory=dict)
    estimated_cost: float | None = None
    note: str | None = None

    def summary_lines(self, currency: str) -> list[str]:
        m = self.metrics
        if not m:
            return ["", f"Cost of this run: not measured ({self.note})"]
        cost = "n/a" if self.estimated_cost is None else f"{self.estimated_cost:.4f} {currency}"
        return ["", "Cost of this run (Spark's own metrics, priced from conf cost:):",
                f"  wall {m['wall_seconds']:.1f} s, {int(m['tasks']):,} tasks, executor core-seconds "
                f"{m['executor_core_seconds']:.1f}, task seconds {m['task_seconds']:.1f}, CPU seconds {m['cpu_seconds']:.1f}",
                f"  input {_size(m['input_bytes'])}, output {_size(m['output_bytes'])}, shuffle read "
                f"{_size(m['shuffle_read_bytes'])}, shuffle write {_size(m['shuffle_write_bytes'])}",
                f"  estimated cost   {cost}" + (f"  ({self.note})" if self.note else "")]


def _size(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    raise AssertionError("unreachable")


def event_log_files(spark: SparkSession) -> list[str] | None:
    """Candidate paths of this application's event log: the rolling folder ``eventlog_v2_<app>`` (Spark 4's
    default), else the single file ``<app>[.inprogress]``; None when event logging is off."""
    sc = spark.sparkContext
    conf = sc.getConf()
    if conf.get("spark.eventLog.enabled", "false").lower() != "true" or not conf.get("spark.eventLog.dir"):
        return None
    base = conf.get("spark.eventLog.dir").rstrip("/")
    attempt = sc._jsc.sc().applicationAttemptId()  # YARN cluster mode names the log after the attempt too
    app = sc.applicationId + (f"_{attempt.get()}" if attempt.isDefined() else "")
    return [f"{base}/eventlog_v2_{app}", f"{base}/{app}.inprogress", f"{base}/{app}"]


def _read_event_log(spark: SparkSession, candidates: list[str]):
    """The first candidate that exists, checked through Hadoop's FileSystem (HDFS, S3, local alike)."""
    sc = spark.sparkContext
    for candidate in candidates:
        path = sc._jvm.org.apache.hadoop.fs.Path(candidate)
        if path.getFileSystem(sc._jsc.hadoopConfiguration()).exists(path):
            return spark.read.text(candidate)
    raise FileNotFoundError(f"no Spark event log at any of {candidates}")


def spark_metrics(spark: SparkSession, since_ms: int, until_ms: int) -> dict[str, float] | None:
    """Task and executor metrics of the tasks that finished in [since_ms, until_ms], from the event log."""
    files = event_log_files(spark)
    if files is None:
        return None
    try:  # the event log is written from an asynchronous listener queue: let it catch up first
        spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty()
    except Exception:  # noqa: BLE001 - a private API; without it the last tasks may be missed
        log.debug("could not wait for Spark's listener bus", exc_info=True)
    events = _read_event_log(spark, files)
    kind = F.get_json_object("value", "$.Event")
    j = lambda path: F.get_json_object("value", path).cast("double")  # noqa: E731
    tasks = (events.where(kind == "SparkListenerTaskEnd")
             .select(j("$['Task Info']['Finish Time']").alias("finish"),
                     j("$['Task Metrics']['Executor Run Time']").alias("run_ms"),
                     j("$['Task Metrics']['Executor CPU Time']").alias("cpu_ns"),
                     j("$['Task Metrics']['Input Metrics']['Bytes Read']").alias("input"),
                     j("$['Task Metrics']['Output Metrics']['Bytes Written']").alias("output"),
                     (j("$['Task Metrics']['Shuffle Read Metrics']['Remote Bytes Read']")
                      + j("$['Task Metrics']['Shuffle Read Metrics']['Local Bytes Read']")).alias("shuffle_read"),
                     j("$['Task Metrics']['Shuffle Write Metrics']['Shuffle Bytes Written']").alias("shuffle_write"))
             .where(F.col("finish").between(since_ms, until_ms)))
    totals = tasks.agg(F.count(F.lit(1)).alias("tasks"), F.sum("run_ms").alias("run_ms"), F.sum("cpu_ns").alias("cpu_ns"),
                       F.sum("input").alias("input"), F.sum("output").alias("output"),
                       F.sum("shuffle_read").alias("shuffle_read"), F.sum("shuffle_write").alias("shuffle_write")).first()
    executors = (events.where(kind.isin("SparkListenerExecutorAdded", "SparkListenerExecutorRemoved"))
                 .select(kind.alias("kind"), F.get_json_object("value", "$['Executor ID']").alias("id"),
                         j("$.Timestamp").alias("at"), j("$['Executor Info']['Total Cores']").alias("cores"))
                 .collect())
    core_ms = 0.0
    added = {r["id"]: (r["at"], r["cores"]) for r in executors if r["kind"] == "SparkListenerExecutorAdded"}
    removed = {r["id"]: r["at"] for r in executors if r["kind"] == "SparkListenerExecutorRemoved"}
    for executor, (at, cores) in added.items():
        alive_from, alive_to = max(at, since_ms), min(removed.get(executor, until_ms), until_ms)
        core_ms += max(alive_to - alive_from, 0.0) * (cores or 0)

    def value(name: str) -> float:
        return float(totals[name] or 0.0)

    return {"wall_seconds": (until_ms - since_ms) / 1000, "tasks": value("tasks"),
            "executor_core_seconds": core_ms / 1000, "task_seconds": value("run_ms") / 1000,
            "cpu_seconds": value("cpu_ns") / 1e9, "input_bytes": value("input"), "output_bytes": value("output"),
            "shuffle_read_bytes": value("shuffle_read"), "shuffle_write_bytes": value("shuffle_write")}


def estimate_cost(core_seconds: float, settings: Settings) -> float | None:
    cost = settings.cost
    price = cost.prices.get(cost.instance_type) if cost.instance_type else None
    if price is None:
        return None
    hourly = price.spot if cost.capacity == "spot" else price.on_demand
    return core_seconds / 3600 / price.vcpus * hourly


def _row(run: JobRun, settings: Settings, finished: float | None) -> tuple:
    m = {k: run.metrics.get(k) for k in ("wall_seconds", "tasks", "executor_core_seconds", "task_seconds", "cpu_seconds",
                                         "input_bytes", "output_bytes", "shuffle_read_bytes", "shuffle_write_bytes")}
    wall = m["wall_seconds"] if run.metrics else (None if finished is None else finished - run.started)
    return (run.run_id, run.job, run.env, run.app_id, run.status,
            datetime.fromtimestamp(run.started, timezone.utc),
            None if finished is None else datetime.fromtimestamp(finished, timezone.utc),
            wall, None if m["tasks"] is None else int(m["tasks"]),
            m["executor_core_seconds"], m["task_seconds"], m["cpu_seconds"],
            *[None if m[k] is None else int(m[k]) for k in ("input_bytes", "output_bytes", "shuffle_read_bytes",
                                                           "shuffle_write_bytes")],
            settings.cost.instance_type, settings.cost.capacity, run.estimated_cost, settings.cost.currency,
            run.mlflow_run_id, run.note, HOST, os.getpid())


def _write(spark: SparkSession, settings: Settings, run: JobRun, finished: float | None) -> None:
    """The run's row: appended when it starts (status running), replaced by run id when it ends."""
    frame = spark.createDataFrame([_row(run, settings, finished)], SCHEMA)
    target = job_runs_table(settings)

    def write() -> None:
        if not target.exists(spark):
            target.save(frame.write.mode("append"))
            return
        (target.delta(spark).alias("t").merge(frame.alias("s"), "t.run_id = s.run_id")
         .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())

    with session_conf(spark, {"spark.databricks.delta.schema.autoMerge.enabled": "true"}):  # older tables: no host
        retry_on_conflict(write, what=f"writing run {run.run_id} to {target}")


def reap_killed_runs(spark: SparkSession, settings: Settings) -> int:
    """Mark ``failed`` the runs of ``job_runs`` still ``running`` whose process, on this machine, is gone (a job
    killed before it could record its end); the number marked."""
    target = job_runs_table(settings)
    if not target.exists(spark) or "pid" not in target.read(spark).columns:
        return 0
    stale = (target.read(spark)
             .where((F.col("status") == "running") & (F.col("host") == HOST)).select("run_id", "host", "pid").collect())
    dead = [r["run_id"] for r in stale if orphaned(r["host"], r["pid"])]
    if dead:
        note = "killed: its process ended without recording the end of the run"
        retry_on_conflict(lambda: target.delta(spark).update(
            F.col("run_id").isin(dead), {"status": F.lit("failed"), "note": F.lit(note)}),
            what=f"marking killed runs in {target}")
        log.warning("marked %d killed job run(s) as failed in %s: %s", len(dead), target, dead)
    return len(dead)


def _record(spark: SparkSession, settings: Settings, run: JobRun, finished: float) -> None:
    metrics = spark_metrics(spark, int(run.started * 1000), int(finished * 1000) + 1)
    if metrics is None:
        run.note = "event logging is off (spark.event_log_dir)"
    else:
        run.metrics = metrics
        run.estimated_cost = estimate_cost(metrics["executor_core_seconds"], settings)
        if run.estimated_cost is None:
            run.note = f"no price for instance type {settings.cost.instance_type!r} in cost.prices"
    _write(spark, settings, run, finished)
    if run.mlflow_run_id and run.metrics:
        from lakeforge.models.registry import mlflow_client

        client = mlflow_client(settings.mlflow)
        for name, number in {**{f"job_{k}": v for k, v in run.metrics.items()},
                             **({"job_estimated_cost": run.estimated_cost} if run.estimated_cost is not None else {})}.items():
            client.log_metric(run.mlflow_run_id, name, float(number))
    log.info("job run", extra=kv(job=run.job, run_id=run.run_id, status=run.status, app_id=run.app_id, **run.metrics,
                                 estimated_cost=run.estimated_cost, mlflow_run_id=run.mlflow_run_id, note=run.note))


@contextmanager
def record_job_run(spark: SparkSession, settings: Settings, job: str) -> Iterator[JobRun]:
    """Measure the body as one run of ``job`` in ``job_runs``: a ``running`` row when it starts, replaced by the
    outcome when it ends, failed or not. Runs left ``running`` by a killed process on this machine are marked
    ``failed`` first."""
    run = JobRun(job, settings.env, spark.sparkContext.applicationId, time.time())
    try:
        reap_killed_runs(spark, settings)
        _write(spark, settings, run, None)
    except Exception:  # noqa: BLE001 - bookkeeping must never stop the job itself
        log.exception("could not record the start of job %s in %s", job, job_runs_table(settings))
    try:
        yield run
        run.status = "succeeded"
    except BaseException:
        run.status = "failed"
        raise
    finally:
        try:
            _record(spark, settings, run, time.time())
        except Exception:  # noqa: BLE001 - bookkeeping must never hide the job's own outcome
            log.exception("could not record the run of job %s in %s", job, job_runs_table(settings))
