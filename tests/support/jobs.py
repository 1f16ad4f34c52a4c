"""Running a job's ``main`` in this test process: with the test's settings and its shared Spark session (which
the job must not stop), capturing what it prints."""

from __future__ import annotations

import contextlib
import importlib.util
import io

import pytest

from lakeforge import cli
from tests.conftest import ROOT


def load_job(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_job", ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_in_process(spark, name: str, settings, *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``jobs/<name>.py --env local ARGV`` run with ``settings`` and ``spark``."""
    job = load_job(name)

    class Builder:
        def getOrCreate(self):  # noqa: N802 - Spark's name
            return spark

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.setattr(cli, "load_settings", lambda env, conf_dir: settings)
        mp.setattr(cli, "lakeforge_builder", lambda spark_settings, master: Builder())
        mp.setattr(spark, "stop", lambda: None)
        code = job.main(["--env", "local", *argv])
    return code, out.getvalue(), err.getvalue()
