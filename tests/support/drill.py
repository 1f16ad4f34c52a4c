"""Fault drills on the standalone cluster: kill a worker while a job's tasks run on it, then read back from Spark's
event log what the driver saw (the executor lost, its tasks failed and run again elsewhere)."""

from __future__ import annotations

import json
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tests.support.standalone import Cluster, Daemon, get_json


@dataclass(frozen=True)
class Kill:
    app_id: str
    executor_id: str
    worker: str
    worker_ui: str
    active_stages: tuple[str, ...]  # "<stage id>: <name> (<running> of <tasks> tasks running)" at the kill


def kill_busy_worker(cluster: Cluster, driver_ui: str, job, ready: Callable[[list[dict]], bool],
                     poll_s: float = 0.05) -> Kill:
    """Wait until an executor of the running application has a task running and ``ready(active stages)`` holds,
    then SIGKILL the worker that runs that executor (the worker JVM, the executor and its Python workers).

    ``job`` is the spark-submit ``Popen``; if it ends first, nothing is killed and the drill fails.
    """
    owners: dict[str, Daemon] = {}
    while job.poll() is None:
        try:
            apps = get_json(f"{driver_ui}/api/v1/applications")
            if not apps:
                continue
            app_id = apps[0]["id"]
            api = f"{driver_ui}/api/v1/applications/{app_id}"
            executors = {str(e["id"]) for e in get_json(f"{api}/executors") if e["id"] != "driver"}
            if executors - owners.keys():  # which worker runs which executor: asked ahead, not at the kill
                owners.update({str(e["id"]): w for w in cluster.workers if w.alive()
                               for e in cluster.worker_state(w)["executors"] if e["appid"] == app_id})
            stages = get_json(f"{api}/stages?status=active")
            if not ready(stages):
                time.sleep(poll_s)
                continue
            # read last, right before the kill: an executor busy now runs a task of a stage that is ready
            busy = [str(e["id"]) for e in get_json(f"{api}/executors") if e["id"] != "driver" and e["activeTasks"] > 0]
        except (OSError, urllib.error.HTTPError, json.JSONDecodeError, IndexError):
            time.sleep(poll_s)
            continue  # the driver's UI is not up yet, or the application is ending
        targets = [b for b in busy if b in owners]
        if not targets:
            time.sleep(poll_s)
        else:
            worker = owners[targets[0]]
            cluster.kill_worker(worker)
            return Kill(app_id, targets[0], worker.name, worker.ui, tuple(
                f"{s['stageId']}: {s['name']} ({s['numActiveTasks']} of {s['numTasks']} tasks running)" for s in stages))
    raise AssertionError(f"the job ended (exit code {job.returncode}) before a task ran on a worker at the point "
                         "the drill waits for: nothing was killed")


def event_log(events_dir: Path, app_id: str) -> list[dict]:
    """Every event of the finished application, from its rolling event log folder (uncompressed)."""
    folder = Path(events_dir) / f"eventlog_v2_{app_id}"
    parts = sorted(folder.glob(f"events_*_{app_id}"), key=lambda p: int(p.name.split("_")[1]))
    if not parts:
        raise FileNotFoundError(f"no event log of {app_id} in {folder}")
    return [json.loads(line) for part in parts for line in part.read_text().splitlines() if line.strip()]


def executor_loss(events: list[dict], executor_id: str) -> dict:
    """What the driver recorded about the lost executor: the removal reason, the tasks that failed with it, and
    for each of those (stage, partition) the successful attempt that replaced it (on which executor)."""
    removed = [e["Removed Reason"] for e in events
               if e["Event"] == "SparkListenerExecutorRemoved" and e["Executor ID"] == executor_id]
    ends = [e for e in events if e["Event"] == "SparkListenerTaskEnd"]
    lost = [e for e in ends if e["Task End Reason"]["Reason"] == "ExecutorLostFailure"
            and e["Task Info"]["Executor ID"] == executor_id]
    redone = {}
    for failed in lost:
        key = (failed["Stage ID"], failed["Task Info"]["Index"])
        redone[key] = sorted({e["Task Info"]["Executor ID"] for e in ends
                              if (e["Stage ID"], e["Task Info"]["Index"]) == key
                              and e["Task End Reason"]["Reason"] == "Success"
                              and e["Task Info"]["Launch Time"] > failed["Task Info"]["Launch Time"]})
    return {"removed": removed, "lost_tasks": sorted(redone), "rerun_on": redone}
