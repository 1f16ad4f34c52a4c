"""spark-submit.sh: the command it builds (dry run) and, once for real, a job through spark-submit."""

import json
import subprocess

import deltalake
import pyspark
import yaml

from lakeforge.demo_data import stage_demo_data
from lakeforge.launch import build_command
from tests.conftest import ROOT

SCRIPT = str(ROOT / "spark-submit.sh")


def _point_storage_at(conf_dir, tmp_path):
    local = conf_dir / "local.yaml"
    doc = yaml.safe_load(local.read_text())
    doc.setdefault("storage", {}).update(root=str(tmp_path / "lakehouse"), landing=str(tmp_path / "landing"))
    doc["spark"]["conf"]["spark.driver.memory"] = "1g"
    local.write_text(yaml.safe_dump(doc))


def test_dry_run_prints_the_full_command(conf_copy):
    out = subprocess.run([SCRIPT, "ingest", "--env", "local", "--conf-dir", str(conf_copy), "--source", "flights",
                          "--conf", "spark.sql.shuffle.partitions=3", "--dry-run"],
                         capture_output=True, text=True, check=True).stdout
    assert "--master 'local[*]'" in out
    delta_jar = {"4": "io.delta_delta-spark_4.2_2.13-4.4.0.jar",  # constraints.txt
                 "3": "io.delta_delta-spark_2.12-3.3.2.jar"}[pyspark.__version__[0]]  # constraints-spark35.txt
    assert delta_jar in out
    assert "--py-files " + str(ROOT / "build" / "dist") in out
    assert "--conf spark.sql.shuffle.partitions=3" in out
    assert out.rstrip().endswith(f"{ROOT}/jobs/ingest.py --env local --conf-dir {conf_copy} --source flights")


def test_cluster_mode_ships_conf_as_an_archive(conf_copy):
    cmd, _ = build_command(["ingest", "--master", "yarn", "--deploy-mode", "cluster", "--env", "emr",
                              "--conf-dir", str(conf_copy), "--source", "flights"])
    archive = cmd[cmd.index("--archives") + 1]
    assert archive.endswith("#lakeforge_conf")
    assert cmd[-4:] == ["--source", "flights", "--conf-dir", "lakeforge_conf"]
    assert "--conf" in cmd and "spark.dynamicAllocation.enabled=false" in cmd


def test_unknown_job_and_missing_env_are_clear():
    bad = subprocess.run([SCRIPT, "ingestt", "--env", "local"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("spark-submit.sh: error: unknown job 'ingestt'; jobs: check, gate, ingest, maintain, monitor, "
                                  "pipeline, score, stream, train (see --help)")
    no_env = subprocess.run([SCRIPT, "score"], capture_output=True, text=True, check=False)
    assert no_env.returncode == 2
    assert no_env.stderr.strip() == f"spark-submit.sh: error: the score job needs --env ENV (one of the files in {ROOT}/conf)"


def test_help_lists_jobs_and_job_help_lists_options():
    top = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, check=True).stdout
    assert "Jobs: check, gate, ingest, maintain, monitor, pipeline, score, stream, train" in top
    job = subprocess.run([SCRIPT, "ingest", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--source SOURCE" in job and "--input INPUT" in job


def test_ingest_job_runs_through_spark_submit(conf_copy, tmp_path):
    _point_storage_at(conf_copy, tmp_path)
    stage_demo_data(tmp_path / "landing", ("airlines",))
    ok = subprocess.run([SCRIPT, "ingest", "--env", "local", "--conf-dir", str(conf_copy), "--source", "airlines",
                         "--master", "local[1]"], capture_output=True, text=True, timeout=600, check=False)
    assert ok.returncode == 0, ok.stderr[-3000:]
    result = json.loads([line for line in ok.stdout.splitlines() if line.startswith('{"source"')][-1])
    assert (result["source"], result["rows_read"], result["silver_rows"]) == ("airlines", 16, 16)
    runs = deltalake.DeltaTable(str(tmp_path / "lakehouse" / "operations" / "job_runs")).to_pandas()
    assert list(runs["job"]) == ["ingest"] and list(runs["status"]) == ["succeeded"]
    assert runs["input_bytes"][0] > 0 and runs["tasks"][0] > 0 and runs["estimated_cost"][0] > 0
    # storage.umask 077 (conf/local.yaml): every file and folder the job wrote is its owner's only
    written = [p for p in (tmp_path / "lakehouse").rglob("*")]
    assert len(written) > 20
    assert [str(p) for p in written if p.stat().st_mode & 0o077] == []

    bad_file = tmp_path / "airlines_bad.csv"
    bad_file.write_text("carrier;name\nUA;United\n")
    bad = subprocess.run([SCRIPT, "ingest", "--env", "local", "--conf-dir", str(conf_copy), "--source", "airlines",
                          "--input", str(bad_file), "--master", "local[1]"], capture_output=True, text=True, timeout=600, check=False)
    assert bad.returncode == 2
    assert (f"error: source 'airlines': file://{bad_file} lacks declared column(s) ['carrier', 'name']; found "
            "['carrier;name'] (is the delimiter or header option right?)") in bad.stdout  # spark-submit merges the
    # driver's stderr into its stdout


def test_a_credential_is_never_put_on_the_command_line(conf_copy):
    import pytest

    from lakeforge.launch import LaunchError

    argv = ["ingest", "--root", str(ROOT), "--conf", "spark.hadoop.fs.s3a.secret.key=abc123", "--env", "local",
            "--conf-dir", str(conf_copy), "--all"]
    with pytest.raises(LaunchError) as err:
        build_command(argv)
    assert str(err.value) == (
        "--conf spark.hadoop.fs.s3a.secret.key=...: looks like a credential, and --conf puts it on spark-submit's "
        "command line, where anyone on the machine can read it; give it through the environment (AWS_ACCESS_KEY_ID / "
        "AWS_SECRET_ACCESS_KEY ...), an instance profile or cluster role")
    assert "abc123" not in str(err.value)
