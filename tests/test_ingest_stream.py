"""Streaming ingestion through spark-submit: kill the stream mid-way, restart it, and nothing is lost or duplicated."""

import os
import signal
import subprocess
import time
from pathlib import Path

import deltalake
import yaml

from lakeforge.demo_data import stage_monthly_flights
from tests.conftest import ROOT, TEST_PII_KEY

SCRIPT = str(ROOT / "spark-submit.sh")
ROWS_PER_MONTH = 150


def _conf(conf_copy: Path, tmp_path: Path) -> None:
    local = conf_copy / "local.yaml"
    doc = yaml.safe_load(local.read_text())
    doc["storage"] = {"root": str(tmp_path / "lakehouse"), "landing": str(tmp_path / "landing")}
    doc["spark"]["conf"]["spark.driver.memory"] = "1g"
    doc.pop("pii", None)
    local.write_text(yaml.safe_dump(doc))


def _merges(silver: Path) -> int:
    log = silver / "_delta_log"
    return sum('"operation":"MERGE"' in p.read_text() for p in log.glob("*.json")) if log.exists() else 0


def test_killed_stream_resumes_without_loss_or_duplicates(conf_copy, tmp_path):
    _conf(conf_copy, tmp_path)
    stage_monthly_flights(tmp_path / "landing", months=(1, 2, 3, 4), rows_per_month=ROWS_PER_MONTH)
    env = dict(os.environ, LAKEFORGE_PII_KEY=TEST_PII_KEY)
    cmd = [SCRIPT, "stream", "--env", "local", "--conf-dir", str(conf_copy), "--source", "flights_stream",
           "--master", "local[2]", "--max-files-per-trigger", "1"]
    silver = tmp_path / "lakehouse" / "silver" / "flights_stream"

    first = subprocess.Popen(cmd + ["--processing-time", "1 second"], env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while _merges(silver) < 1 and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and its JVM, without any chance to clean up
    output = first.communicate()[0]
    assert _merges(silver) >= 1, output[-3000:]
    assert _merges(silver) < 4, "the stream finished before it could be killed mid-way"

    second = subprocess.run(cmd + ["--available-now"], env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]

    lake = tmp_path / "lakehouse"
    assert deltalake.DeltaTable(str(silver)).to_pyarrow_table().num_rows == 4 * ROWS_PER_MONTH
    bronze = deltalake.DeltaTable(str(lake / "bronze" / "flights_stream")).to_pyarrow_table()
    assert bronze.num_rows == 4 * ROWS_PER_MONTH
    assert sorted({Path(p.as_py()).name for p in bronze.column("_source_file")}) == [
        f"flights_2013_0{m}.csv" for m in (1, 2, 3, 4)]
    assert len(set(bronze.column("_batch_id").to_pylist())) == 4
    assert _merges(silver) == 4
