"""The ``lakeforge`` command: one job run inside this Python process, on the Spark driver it already runs in.

    lakeforge --help                               # the jobs
    lakeforge score --help                         # a job's options: the same as ./spark-submit.sh score --help
    lakeforge train --env databricks --conf-dir /Workspace/.../files/conf --promote never

``lakeforge JOB ...`` takes exactly the arguments of ``./spark-submit.sh JOB ...``. The launcher builds a
``spark-submit`` command and starts a new application from outside a cluster; this command runs the job where it
is called: a Databricks job cluster's ``python_wheel_task`` (``entry_point: lakeforge``), a notebook's kernel
(``lakeforge.commands.main(["check", "--env", ...])``), a process that spark-submit started. The job then works
on that driver's session (``cli.job_context``); without one it builds its own, as under spark-submit.

Each job's parser and ``main`` live in ``lakeforge.commands.<job>``; ``jobs/<job>.py`` are the files spark-submit
runs, and call the same ``main``. Only the standard library and lakeforge's light modules (``cli``, ``logs``,
``errors``) are imported here and in the job modules, so ``--help`` never starts Spark or loads MLflow.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType
from collections.abc import Sequence

from lakeforge import __version__, cli

__all__ = ["JOBS", "PROG", "SERVICES", "default_job_file", "job_module", "main", "parser_for", "run"]

PROG = "lakeforge"
JOBS = ("check", "gate", "ingest", "maintain", "monitor", "pipeline", "score", "stream", "train")
SERVICES = ("serve",)  # long-running, no Spark: not a spark-submit job (no jobs/<name>.py)
# lib/lakeforge/commands/ -> the project's root when lakeforge runs from its source tree (an editable install)
_SOURCE_ROOT = Path(__file__).resolve().parents[3]


def default_job_file(job: str) -> str:
    """The file whose folder's parent holds the default ``conf/`` (``cli.job_parser`` reads it so): the project's
    ``jobs/<job>.py`` when lakeforge runs from its source tree, else ``./jobs/<job>.py`` (so ``./conf``) for an
    installed wheel, where jobs pass ``--conf-dir`` (the Databricks bundle passes its synced ``conf/``)."""
    root = _SOURCE_ROOT if (_SOURCE_ROOT / "conf" / "base.yaml").is_file() else Path.cwd()
    return str(root / "jobs" / f"{job}.py")


def parser_for(doc: str, job: str, prog: str | None, job_file: str | None) -> argparse.ArgumentParser:
    """``cli.job_parser`` for a job module: its docstring's first line as description, ``prog`` as the name in its
    usage line (``lakeforge score``; None: the script's name, ``score.py`` under spark-submit)."""
    parser = cli.job_parser(doc.splitlines()[0], job_file or default_job_file(job))
    if prog:
        parser.prog = prog
    return parser


def job_module(job: str) -> ModuleType:
    """``lakeforge.commands.<job>``: its ``parser(prog, job_file)`` and ``main(argv, prog=, job_file=)``."""
    if job not in JOBS + SERVICES:
        raise KeyError(job)
    return importlib.import_module(f"{__name__}.{job}")


def usage() -> str:
    width = max(len(job) for job in JOBS)
    lines = [f"usage: {PROG} JOB [job options]        ({PROG} JOB --help: the job's own options)", "",
             "Runs one lakeforge job in this Python process, on the Spark session of the driver it runs in (a",
             "Databricks job cluster's python_wheel_task, a notebook, an application spark-submit started), else on",
             "a session of its own. ./spark-submit.sh JOB takes the same options and submits the job from outside.",
             "", "jobs:"]
    lines += [f"  {job:<{width}}  {(job_module(job).__doc__ or '').splitlines()[0]}" for job in JOBS]
    lines += ["", "services:"]
    lines += [f"  {name:<{width}}  {(job_module(name).__doc__ or '').splitlines()[0]}" for name in SERVICES]
    lines += ["", "exit codes: 0 done, 1 unexpected failure, 2 input or configuration error, 3 monitoring alert,",
              "4 challenger refused (gate --require-promotion), 5 data quality (lakeforge.errors)"]
    return "\n".join(lines)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lakeforge JOB [options]`` (``argv`` without the program name; default ``sys.argv[1:]``) and return its
    exit code (``lakeforge.errors``); ``--help`` and argument errors return argparse's 0 and 2 instead of exiting."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"{PROG} {__version__}")
        return 0
    job, rest = argv[0], argv[1:]
    if job not in JOBS + SERVICES:
        print(f"{PROG}: error: unknown job {job!r}; jobs: {', '.join(JOBS)} (see {PROG} --help)", file=sys.stderr)
        return 2
    try:
        return job_module(job).main(rest, prog=f"{PROG} {job}")
    except SystemExit as exc:  # argparse's --help (0) and argument errors (2)
        return _exit_code(exc.code)


def run(argv: Sequence[str] | None = None) -> None:
    """The console script (``lakeforge``, setup.py) and the Databricks ``python_wheel_task`` entry point: returns on
    success and raises ``SystemExit`` with the job's code otherwise, so that a task that calls the function (rather
    than a script that passes its return value to ``sys.exit``) fails too."""
    code = main(argv)
    if code:
        raise SystemExit(code)
