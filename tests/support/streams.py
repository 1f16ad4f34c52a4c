"""A stream job killed mid-way: started through ./spark-submit.sh, SIGKILLed (driver and JVM, no clean-up) as soon
as its first silver MERGE has committed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import yaml


def stream_conf(conf_copy: Path, tmp_path: Path) -> None:
    """conf_copy's local environment with its lakehouse and landing under ``tmp_path``, a 1 GiB driver, and the PII
    key from the environment (LAKEFORGE_PII_KEY) rather than the development key file."""
    local = conf_copy / "local.yaml"
    doc = yaml.safe_load(local.read_text())
    doc["storage"] = {"root": str(tmp_path / "lakehouse"), "landing": str(tmp_path / "landing")}
    doc["spark"]["conf"]["spark.driver.memory"] = "1g"
    doc.pop("pii", None)
    local.write_text(yaml.safe_dump(doc))


def silver_merges(silver: Path) -> int:
    log = silver / "_delta_log"
    return sum('"operation":"MERGE"' in p.read_text() for p in log.glob("*.json")) if log.exists() else 0


def kill_after_first_merge(cmd: list[str], env: dict[str, str], silver: Path, *, batches: int,
                           timeout: float = 240) -> None:
    """Run ``cmd`` until ``silver`` has a MERGE, then kill it; assert it was killed mid-way (before ``batches``)."""
    first = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    while silver_merges(silver) < 1 and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    output = first.communicate()[0]
    assert silver_merges(silver) >= 1, output[-3000:]
    assert silver_merges(silver) < batches, "the stream finished before it could be killed mid-way"
