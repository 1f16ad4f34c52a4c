"""Streaming ingestion through spark-submit: kill the stream mid-way, restart it, and nothing is lost or duplicated."""

import os
import subprocess
from pathlib import Path

import deltalake

from lakeforge.demo_data import stage_monthly_flights
from tests.conftest import ROOT, TEST_PII_KEY
from tests.support.streams import kill_after_first_merge, silver_merges, stream_conf

SCRIPT = str(ROOT / "spark-submit.sh")
ROWS_PER_MONTH = 150


def test_killed_stream_resumes_without_loss_or_duplicates(conf_copy, tmp_path):
    stream_conf(conf_copy, tmp_path)
    stage_monthly_flights(tmp_path / "landing", months=(1, 2, 3, 4), rows_per_month=ROWS_PER_MONTH)
    env = dict(os.environ, LAKEFORGE_PII_KEY=TEST_PII_KEY)
    cmd = [SCRIPT, "stream", "--env", "local", "--conf-dir", str(conf_copy), "--source", "flights_stream",
           "--master", "local[2]", "--max-files-per-trigger", "1"]
    silver = tmp_path / "lakehouse" / "silver" / "flights_stream"

    kill_after_first_merge(cmd + ["--processing-time", "1 second"], env, silver, batches=4)

    second = subprocess.run(cmd + ["--available-now"], env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]

    lake = tmp_path / "lakehouse"
    assert deltalake.DeltaTable(str(silver)).to_pyarrow_table().num_rows == 4 * ROWS_PER_MONTH
    bronze = deltalake.DeltaTable(str(lake / "bronze" / "flights_stream")).to_pyarrow_table()
    assert bronze.num_rows == 4 * ROWS_PER_MONTH
    assert sorted({Path(p.as_py()).name for p in bronze.column("_source_file")}) == [
        f"flights_2013_0{m}.csv" for m in (1, 2, 3, 4)]
    assert len(set(bronze.column("_batch_id").to_pylist())) == 4
    assert silver_merges(silver) == 4
