"""Reruns that finish the job: a training killed at each of its steps is finished by the next run (the gate
included), its MLflow run is not left RUNNING, and a killed job's row in job_runs is marked failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pyspark.sql import functions as F

from lakeforge.runs import job_runs_table, record_job_run
from lakeforge.train import train_model
from lakeforge.models.registry import ensure_experiment, mlflow_client
from lakeforge.train.resume import GATE_TAG, MODEL_URI_TAG
from tests.conftest import ROOT
from tests.support.resume_setup import gold_table, resume_settings


def _kill_at(point: str, work) -> None:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'lib'}:{ROOT}", PYSPARK_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "support" / "killed.py"), str(ROOT / ".cache" / "jars"), str(work),
                           point], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.mark.parametrize("point", ["fit", "logged", "registered", "gated"])
def test_a_training_killed_at_any_step_is_finished_by_its_rerun(spark, tmp_path, point):
    _kill_at(point, tmp_path)
    settings = resume_settings(tmp_path)
    client = mlflow_client(settings.mlflow)
    killed = client.search_runs([ensure_experiment(client, settings.mlflow)], "")
    assert [r.info.status for r in killed] == ["RUNNING"]  # what the kill left

    result = train_model(spark, settings, gold_table(spark, tmp_path))

    name = settings.model.registered_name
    versions = client.search_model_versions(f"name='{name}'")
    assert [int(v.version) for v in versions] == [result.model_version] == [1]  # never registered twice
    version = client.get_model_version(name, "1")
    decision = json.loads(version.tags[GATE_TAG])
    assert decision["promoted"] and int(client.get_model_version_by_alias(name, "champion").version) == 1
    assert result.champion and result.decision == decision
    runs = {r.info.run_id: r for r in client.search_runs([ensure_experiment(client, settings.mlflow)], "")}
    old = runs[killed[0].info.run_id]
    if point == "fit":  # nothing worth keeping was logged: trained again, the killed run marked FAILED
        assert result.retrained and old.info.status == "FAILED" and "lakeforge.failure" in old.data.tags
        assert runs[result.run_id].info.status == "FINISHED"
    else:  # the rerun finished the killed run's steps instead of training again
        assert not result.retrained and result.run_id == old.info.run_id
        assert old.info.status == "FINISHED" and MODEL_URI_TAG in old.data.tags
        assert old.data.tags["promoted"] == "true"
    assert [a.path for a in client.list_artifacts(result.run_id) if a.path == "registry_gate.json"]
    again = train_model(spark, settings, gold_table(spark, tmp_path))  # done: a third run changes nothing
    assert (again.model_version, again.retrained) == (1, False)
    assert len(client.search_model_versions(f"name='{name}'")) == 1


def test_a_killed_job_is_recorded_as_failed_by_the_next_one(spark, tmp_path):
    _kill_at("job", tmp_path)
    settings = resume_settings(tmp_path)
    rows = spark.read.format("delta").load(job_runs_table(settings)).collect()
    assert [(r["job"], r["status"]) for r in rows] == [("doomed", "running")]
    with record_job_run(spark, settings, "next"):
        pass
    rows = {r["job"]: r for r in spark.read.format("delta").load(job_runs_table(settings)).collect()}
    assert rows["doomed"]["status"] == "failed"
    assert rows["doomed"]["note"] == "killed: its process ended without recording the end of the run"
    assert rows["next"]["status"] == "succeeded" and rows["next"]["pid"] == os.getpid()
    assert spark.read.format("delta").load(job_runs_table(settings)).where(F.col("status") == "running").count() == 0
