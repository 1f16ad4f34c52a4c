"""A job's front door: ``--help`` without the heavy libraries, and a console that is lakeforge's own (stage lines,
key=value or JSON, other libraries from WARNING up, progress lines for long Spark stages)."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from lakeforge import logs
from tests.conftest import ROOT

JOBS = sorted(p.stem for p in (ROOT / "jobs").glob("*.py") if not p.stem.startswith("_"))
HEAVY = ("pyspark", "mlflow", "matplotlib", "scipy", "xgboost", "torch")

# The job file run as `python jobs/<job>.py --help` does (runpy, as __main__), then the heavy modules it loaded.
HELP = """
import json, runpy, sys
sys.argv = [{path!r}, "--help"]
try:
    runpy.run_path({path!r}, run_name="__main__")
    code = None
except SystemExit as exc:
    code = exc.code
print("FRONT-DOOR " + json.dumps({{"code": code, "heavy": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          check=False)


def test_every_job_is_tested():
    assert {"check", "gate", "ingest", "maintain", "monitor", "pipeline", "score", "stream", "train"} <= set(JOBS)


@pytest.mark.parametrize("job", JOBS)
def test_help_prints_the_options_without_importing_heavy_libraries(job):
    proc = _python(HELP.format(path=str(ROOT / "jobs" / f"{job}.py"), heavy=HEAVY))
    assert proc.returncode == 0, proc.stderr
    *help_lines, last = proc.stdout.splitlines()
    outcome = json.loads(last.removeprefix("FRONT-DOOR "))
    assert outcome == {"code": 0, "heavy": []}
    shown = "\n".join(help_lines)
    assert shown.startswith(f"usage: {job}.py") and "--env ENV" in shown and "--log-format {text,json}" in shown


def test_help_through_the_python_interpreter():
    proc = subprocess.run([sys.executable, str(ROOT / "jobs" / "train.py"), "--help"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: train.py") and proc.stderr == ""


def test_the_cli_module_imports_only_the_standard_library_and_lakeforge():
    proc = _python("import sys; before = set(sys.modules); import lakeforge.cli; "
                   "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] not in sys.stdlib_module_names))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['lakeforge', 'lakeforge.cli', 'lakeforge.errors', 'lakeforge.logs']"


def test_the_job_modules_import_only_the_standard_library_and_lakeforges_light_modules():
    """jobs/<job>.py import lakeforge.commands.<job> before parsing: nothing heavy may come with it."""
    proc = _python("import sys; before = set(sys.modules); import lakeforge.commands; from lakeforge.commands import "
                   + ", ".join(JOBS) + "; print(sorted(m for m in set(sys.modules) - before "
                   "if m.split('.')[0] not in sys.stdlib_module_names))")
    assert proc.returncode == 0, proc.stderr
    assert eval(proc.stdout) == sorted(["lakeforge", "lakeforge.cli", "lakeforge.errors", "lakeforge.logs",
                                        "lakeforge.commands", *(f"lakeforge.commands.{job}" for job in JOBS)])


def test_every_job_file_is_a_shim_of_its_command_module():
    for job in JOBS:
        code = [line for line in (ROOT / "jobs" / f"{job}.py").read_text().split('"""')[2].splitlines() if line]
        assert code == ["import sys", f"from lakeforge.commands.{job} import main", 'if __name__ == "__main__":',
                        "    sys.exit(main(job_file=__file__))"], job


# A job's main through cli.run_job: lakeforge's lines, other libraries' at INFO (even after they set their own
# level again, as Hyperopt and MLflow do) and at WARNING, then an error lakeforge raises on purpose.
CONSOLE = """
import argparse, logging, os, sys, warnings
from lakeforge.cli import run_job
from lakeforge.errors import InputError
from lakeforge.logs import kv

def main():
    logging.getLogger("hyperopt.tpe").setLevel(logging.INFO)
    log = logging.getLogger("lakeforge.score")
    log.info("scored", extra=kv(rows=10, table="/lake/predictions", note="two words", ratio=0.25, ok=True))
    for name in ("hyperopt.tpe", "py4j.clientserver", "mlflow.tracking", "urllib3.connectionpool", "numexpr.utils"):
        logging.getLogger(name).info("chatter from %s", name)
    logging.getLogger("py4j.clientserver").warning("a real warning")
    warnings.warn("an old way of doing it", FutureWarning)
    print("env " + os.environ["MLFLOW_LOGGING_LEVEL"] + " " + os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"])
    raise InputError("no such table /lake/x")

sys.exit(run_job(main, argparse.Namespace(log_level="INFO", log_format=sys.argv[1])))
"""


def test_text_console_shows_lakeforge_lines_as_key_value_pairs_and_only_warnings_of_others():
    proc = _python(CONSOLE, "text")
    assert proc.returncode == 2 and proc.stdout == "env WARNING false\n"
    lines = [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", "", line) for line in proc.stderr.splitlines()]
    assert lines == ['INFO lakeforge.score: scored rows=10 table=/lake/predictions note="two words" ratio=0.25 ok=true',
                     "WARNING py4j.clientserver: a real warning",
                     "WARNING py.warnings: FutureWarning: an old way of doing it at=<string>:14",
                     "error: no such table /lake/x"]


def test_json_console_is_one_object_per_line():
    proc = _python(CONSOLE, "json")
    assert proc.returncode == 2
    *records, error = proc.stderr.splitlines()
    assert error == "error: no such table /lake/x"
    parsed = [json.loads(line) for line in records]
    assert [{k: v for k, v in r.items() if k != "time"} for r in parsed] == [
        {"level": "INFO", "logger": "lakeforge.score", "msg": "scored", "rows": 10, "table": "/lake/predictions",
         "note": "two words", "ratio": 0.25, "ok": True},
        {"level": "WARNING", "logger": "py4j.clientserver", "msg": "a real warning"},
        {"level": "WARNING", "logger": "py.warnings", "msg": "FutureWarning: an old way of doing it", "at": "<string>:14"}]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", r["time"]) for r in parsed)


def test_mlflow_imported_after_the_console_is_configured_logs_through_it():
    proc = _python("import logging, sys\n"
                   "from lakeforge import logs\n"
                   "logs.configure('INFO', 'json')\n"
                   "import mlflow\n"
                   "from mlflow.utils.logging_utils import eprint\n"
                   "logger = logging.getLogger('mlflow')\n"
                   "print(len(logger.handlers), logger.propagate)\n"
                   "logging.getLogger('mlflow.store').info('Creating initial MLflow database tables...')\n"
                   "logging.getLogger('mlflow.store').warning('a real warning')\n"
                   "eprint('printed before quiet_libraries')\n"
                   "logs.quiet_libraries()\n"
                   "eprint(\"Successfully registered model 'm'.\")\n"
                   "mlflow.utils.logging_utils.enable_logging()  # as MLflow's own contexts do on their way out\n"
                   "eprint(\"Created version '1' of model 'm'.\")\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "0 True\n"
    *lines, printed = proc.stderr.splitlines()
    assert printed == "printed before quiet_libraries"  # the eprint lines after it: not shown
    records = [json.loads(line) for line in lines]
    assert [(r["logger"], r["msg"]) for r in records if r["logger"].startswith("mlflow")] == [("mlflow.store",
                                                                                                "a real warning")]


def test_a_host_that_configured_logging_keeps_its_console():
    proc = _python("import logging\nfrom lakeforge import logs\nlogging.basicConfig(level='WARNING')\n"
                   "print(logs.configure('INFO', 'json'), logging.getLogger().level, len(logging.getLogger().handlers))")
    assert proc.stdout == "False 30 1\n"


@dataclass(frozen=True)
class _Table:  # the shape of lakeforge's results: GoldTable (rows, path), ScoreResult (rows_written, table)
    path: str
    rows: int


@dataclass(frozen=True)
class _Scored:
    table: str
    rows_written: int


@pytest.fixture
def stage_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    logger = logging.getLogger("lakeforge.test_stage")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, lambda: [line.split(": ", 1)[1] for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def _seconds(line: str) -> str:
    return re.sub(r"seconds=\d+(\.\d+)?(e[-+]\d+)?", "seconds=S", line)


def test_a_stage_logs_its_start_and_its_end_with_rows_seconds_and_path(stage_lines):
    logger, lines = stage_lines
    with logs.stage("gold", logger) as gold:
        assert gold.done(_Table("/lake/gold", 336776)) == _Table("/lake/gold", 336776)
    with logs.stage("ingest", logger, source="flights") as ingest:
        ingest.done(None, wrote="/lake/silver/flights")
    with logs.stage("maintain", logger) as several:
        several.done([_Scored("/lake/a", 2), _Scored("/lake/b", 3)])
    with pytest.raises(ZeroDivisionError), logs.stage("train", logger):
        raise ZeroDivisionError("boom")
    assert [_seconds(line) for line in lines()] == [
        "stage=gold event=start", "stage=gold event=end rows=336776 seconds=S wrote=/lake/gold",
        "stage=ingest event=start source=flights", "stage=ingest event=end source=flights seconds=S wrote=/lake/silver/flights",
        "stage=maintain event=start", "stage=maintain event=end rows=5 seconds=S wrote=/lake/a,/lake/b",
        "stage=train event=start", "stage=train event=failed seconds=S error=ZeroDivisionError"]


def test_progress_lines_for_a_long_spark_stage(spark, stage_lines):
    logger, lines = stage_lines

    def slow(x):
        time.sleep(1.5)
        return x

    progress = logs.SparkProgress(spark, interval=0.5, logger=logger).start()
    try:
        assert spark.sparkContext.parallelize(range(4), 2).map(slow).count() == 4
    finally:
        progress.stop()
    shown = lines()
    assert shown and all(re.fullmatch(r"progress job=\d+ stage=\d+ tasks=[0-2]/2 running=[0-2]", line) for line in shown)
    assert not progress._thread.is_alive()
