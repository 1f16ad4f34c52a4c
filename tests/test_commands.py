"""The ``lakeforge`` command (lakeforge.commands): installed as a console script, the same job options as
``./spark-submit.sh JOB``, exit 2 for an unknown job, and a job run inside a driver that already exists uses that
driver's session as it is: the session is not stopped, its static settings are not touched, and the environment's
runtime SQL settings hold for the job only."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lakeforge import commands
from tests.conftest import ROOT

BIN = Path(sys.executable).parent / "lakeforge"
HEAVY = ("pyspark", "mlflow", "matplotlib", "scipy", "xgboost", "torch", "pydantic")


def _lakeforge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          check=False)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          check=False)


def _same_text(help_text: str) -> str:
    """A job's help with the program name taken out and whitespace folded: argparse indents the usage lines after
    the first by the name's length (``lakeforge score`` against ``score.py``)."""
    return " ".join(re.sub(r"^usage: \S+( score| \w+)?", "usage:", help_text).split())


def test_the_console_script_is_installed():
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts["lakeforge"] == "lakeforge.commands:run"
    assert BIN.is_file(), f"{BIN} is missing: run .venv/bin/python -m pip install -c constraints.txt -e . --no-deps"
    assert 'entry_points={"console_scripts": ["lakeforge = lakeforge.commands:run"]}' in (ROOT / "setup.py").read_text()


def test_help_lists_every_job_with_its_summary():
    proc = _lakeforge("--help")
    assert proc.returncode == 0 and proc.stderr == ""
    listed = dict(line.split(None, 1) for line in proc.stdout.split("jobs:\n")[1].split("\n\n")[0].splitlines())
    assert list(listed) == list(commands.JOBS) == sorted(p.stem for p in (ROOT / "jobs").glob("*.py"))
    assert listed["score"] == "Score a Delta table with a registered model and write the predictions Delta table."
    bare = _lakeforge()
    assert bare.returncode == 2 and bare.stdout == "" and bare.stderr.startswith("usage: lakeforge JOB")


@pytest.mark.parametrize("job", commands.JOBS)
def test_a_jobs_help_is_the_same_as_spark_submits(job):
    mine = _lakeforge(job, "--help")
    theirs = subprocess.run([sys.executable, str(ROOT / "jobs" / f"{job}.py"), "--help"], capture_output=True,
                            text=True, timeout=300, check=False)
    assert mine.returncode == theirs.returncode == 0 and mine.stderr == theirs.stderr == ""
    assert mine.stdout.startswith(f"usage: lakeforge {job} [-h] --env ENV")
    assert theirs.stdout.startswith(f"usage: {job}.py [-h] --env ENV")
    assert _same_text(mine.stdout) == _same_text(theirs.stdout)


def test_score_help_shows_the_jobs_options():
    shown = " ".join(_lakeforge("score", "--help").stdout.split())
    for option in ("--conf-dir CONF_DIR", "--model MODEL", "[--alias ALIAS | --version VERSION]", "--input INPUT",
                   "--incremental", "--log-format {text,json}"):
        assert option in shown


def test_an_unknown_job_exits_2_naming_the_jobs():
    proc = _lakeforge("scor", "--env", "local")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("lakeforge: error: unknown job 'scor'; jobs: check, gate, ingest, maintain, monitor, "
                           "pipeline, score, stream, train (see lakeforge --help)\n")


def test_a_bad_option_exits_2_and_a_missing_env_too(capsys):
    assert commands.main(["gate", "--env", "local", "--alais", "challenger"]) == 2
    assert "lakeforge gate: error: unrecognized arguments: --alais challenger" in capsys.readouterr().err
    assert commands.main(["score"]) == 2
    assert "lakeforge score: error: the following arguments are required: --env" in capsys.readouterr().err


def test_run_raises_system_exit_only_for_a_failure(capsys):
    assert commands.run(["--version"]) is None
    assert capsys.readouterr().out.startswith("lakeforge ")
    with pytest.raises(SystemExit) as exit_:
        commands.run(["nope"])
    assert exit_.value.code == 2


def test_help_imports_no_heavy_library():
    proc = _python("import contextlib, io, json, sys\n"
                   "from lakeforge.commands import main\n"
                   "with contextlib.redirect_stdout(io.StringIO()):\n"
                   "    codes = [main(['--help']), main(['train', '--help']), main(['score', '--help'])]\n"
                   f"print(json.dumps([codes, sorted(m for m in {HEAVY!r} if m in sys.modules)]))")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [[0, 0, 0], []]


def test_conf_dir_defaults_to_the_projects_conf_from_the_source_tree_and_to_cwd_from_a_wheel(tmp_path, monkeypatch):
    assert commands.default_job_file("score") == str(ROOT / "jobs" / "score.py")
    assert commands.job_module("score").parser().parse_args(["--env", "x"]).conf_dir == str(ROOT / "conf")
    monkeypatch.setattr(commands, "_SOURCE_ROOT", tmp_path / "site-packages")  # installed: no conf/ beside the code
    monkeypatch.chdir(tmp_path)
    assert commands.job_module("score").parser().parse_args(["--env", "x"]).conf_dir == str(tmp_path / "conf")


def test_a_job_runs_in_the_existing_session_and_leaves_it_as_it_was(spark, conf_copy, monkeypatch, capsys):
    """``lakeforge check`` inside a driver that already runs (here the suite's session, as in a notebook or a
    Databricks task): the job gets that very session, and afterwards the session still runs, with its own settings:
    none of conf/local.yaml's (shuffle partitions 4, driver memory 6g, app name lakeforge) replaced them."""
    import lakeforge.check

    seen = {}
    real = lakeforge.check.check_configuration

    def spy(session, settings):
        seen.update(session=session)
        return real(session, settings)

    monkeypatch.setattr(lakeforge.check, "check_configuration", spy)
    before = {key: spark.conf.get(key) for key in ("spark.sql.shuffle.partitions", "spark.app.name", "spark.driver.memory",
                                                    "spark.sql.extensions", "spark.sql.catalog.spark_catalog")}
    code = commands.main(["check", "--env", "local", "--conf-dir", str(conf_copy)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("configuration of environment 'local': OK")
    assert seen["session"] is spark
    assert {key: spark.conf.get(key) for key in before} == before == {
        "spark.sql.shuffle.partitions": "2", "spark.app.name": "lakeforge-tests", "spark.driver.memory": "4g",
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog"}
    assert spark.sparkContext.appName == "lakeforge-tests" and spark.range(3).count() == 3  # not stopped


def test_on_databricks_the_clusters_session_is_taken_without_lakeforges_builder(spark, conf_copy, monkeypatch):
    """A python_wheel_task's process may have no active session yet: the cluster's session is then taken with a bare
    ``SparkSession.builder.getOrCreate()``, never with lakeforge's builder options, and never stopped."""
    from pyspark.sql import SparkSession

    from lakeforge import cli

    built = []
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "19.0")
    monkeypatch.setattr(SparkSession, "getActiveSession", classmethod(lambda cls: None))
    monkeypatch.setattr(cli, "lakeforge_builder", lambda settings, master: built.append(master) or SparkSession.builder)
    monkeypatch.setattr(spark, "stop", lambda: pytest.fail("the job stopped the cluster's session"))
    assert commands.main(["check", "--env", "local", "--conf-dir", str(conf_copy)]) == 0
    assert built == []
