"""Which process owns a record: runs (MLflow runs, ``job_runs`` rows) carry the host and process id of the job that
started them, so that a later job on the same machine can tell a run still going from one whose process was killed
before it could record its end."""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()
HOST_TAG, PID_TAG = "lakeforge.host", "lakeforge.pid"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def owner_tags() -> dict[str, str]:
    """Tags naming this process, for MLflow runs."""
    return {HOST_TAG: HOST, PID_TAG: str(os.getpid())}


def orphaned(host: str | None, pid: str | int | None) -> bool:
    """True when (host, pid) names a process of this machine, other than this one, that is gone."""
    if host != HOST or pid is None or int(pid) == os.getpid():
        return False
    return not process_alive(int(pid))
