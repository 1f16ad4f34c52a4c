"""What every job shares: its arguments, its console (``lakeforge.logs``), its session and job-run record
(``job_context``), and turning lakeforge's own errors into a clear message and the exit code of ``lakeforge.errors``.

A job stays thin: parse arguments, enter the context, call one library function::

    def main(argv=None) -> int:
        args = job_parser(__doc__.splitlines()[0], __file__).parse_args(argv)

        def job():
            from lakeforge.score import score_table      # heavy imports after parsing: --help stays fast

            with job_context(args, "score") as ctx:
                result = ctx.done(score_table(ctx.spark, ctx.settings))
            print(json.dumps(asdict(result)))

        return run_job(job, args)

Only the standard library and lightweight lakeforge modules are imported here (no pyspark, pydantic or MLflow).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from lakeforge import logs
from lakeforge.errors import EXIT_FAILURE, EXIT_INPUT, LakeforgeError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakeforge.config import Settings, SparkSettings
    from lakeforge.runs import JobRun

__all__ = ["EXIT_FAILURE", "EXIT_INPUT", "JobContext", "add_promote_option", "job_context", "job_parser", "run_job"]

log = logging.getLogger("lakeforge")


def job_parser(description: str, job_file: str) -> argparse.ArgumentParser:
    """Arguments every job takes; ``job_file`` (the job's ``__file__``) locates the default conf/."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--env", required=True, help="environment: conf/<env>.yaml overlays conf/base.yaml")
    parser.add_argument("--conf-dir", default=str(Path(job_file).resolve().parent.parent / "conf"),
                        help="folder holding base.yaml, <env>.yaml and sources/ (default: the project's conf/)")
    parser.add_argument("--master", default=None, help="Spark master when not launched by spark-submit")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="level of lakeforge's own lines (other libraries: WARNING and up)")
    parser.add_argument("--log-format", default="text", choices=logs.FORMATS,
                        help="text (default): 'time LEVEL logger: message key=value ...'; json: one JSON object "
                             "per line, for log shippers")
    return parser


def add_promote_option(parser: argparse.ArgumentParser) -> None:
    """``--promote`` for jobs that train: how the registry gate treats the new version."""
    parser.add_argument("--promote", choices=("never", "gate", "always"), default="gate",
                        help="gate (default): champion only if it clears model.min_auc and beats the champion by "
                             "model.min_improvement on the same holdout")


def load_settings(env: str, conf_dir: str) -> Settings:
    """``lakeforge.config.load_settings``, imported when a job runs rather than for ``--help`` (tests replace it)."""
    from lakeforge.config import load_settings as load

    return load(env, conf_dir)


def lakeforge_builder(settings: SparkSettings, master: str | None):
    """``lakeforge.spark.lakeforge_builder``, imported when a job runs (tests replace it to lend their session)."""
    from lakeforge.spark import lakeforge_builder as builder

    return builder(settings, master)


@dataclass
class JobContext:
    """What a job's body works with: ``settings``, ``spark``, and ``run``, its row in ``job_runs`` (None for jobs
    that record none), whose ``mlflow_run_id`` the job may set."""

    job: str
    settings: Settings
    spark: SparkSession
    run: JobRun | None
    stage: logs.Stage = field(repr=False)

    def done(self, result: Any, **fields: Any) -> Any:
        """``result`` (returned as is) gives the job's ``stage=<job> event=end`` line its rows and path."""
        return self.stage.done(result, **fields)


@contextmanager
def job_context(args: argparse.Namespace, job: str, *, record: bool = True) -> Iterator[JobContext]:
    """Settings of ``args.env`` (from ``args.conf_dir``), a session (``args.master`` outside spark-submit), the
    libraries imported by then kept quiet (``logs.quiet_libraries``), Spark progress lines, the job's run recorded
    in ``job_runs`` (unless ``record`` is False) and its stage lines ``stage=<job> event=start|end``; on the way
    out, failed or not: the run's outcome recorded, progress stopped, and the session stopped unless the job found
    it running (a notebook's, a Databricks job cluster's: it belongs to the driver, not to the job).

    Tables addressed by name (``storage.schema``) need their schemas: checked (or created) before any work."""
    from pyspark.sql import SparkSession

    from lakeforge.spark import job_spark_settings
    from lakeforge.tables import prepare_storage

    settings = load_settings(args.env, args.conf_dir)
    # A session the job finds running, or a Databricks driver's (its SparkContext is the cluster's), is not stopped.
    running = SparkSession.getActiveSession()
    if running is None and "DATABRICKS_RUNTIME_VERSION" in os.environ:
        running = SparkSession.builder.getOrCreate()  # the cluster's own session: none of lakeforge's builder options
    spark_settings = job_spark_settings(settings, job, getattr(args, "source", None))  # + Kafka's, for a kafka stream
    spark = running or lakeforge_builder(spark_settings, args.master).getOrCreate()
    owned = running is None
    logs.quiet_libraries()
    progress = logs.SparkProgress(spark).start()
    try:
        prepare_storage(spark, settings.storage)
        with ExitStack() as stack:
            if record:
                from lakeforge.runs import record_job_run

                run = stack.enter_context(record_job_run(spark, settings, job))
            else:
                run = None
            stage = stack.enter_context(logs.stage(job, log))
            yield JobContext(job, settings, spark, run, stage)
    finally:
        progress.stop()
        if owned:
            spark.stop()


def run_job(main: Callable[[], int | None], args: argparse.Namespace | None = None) -> int:
    """Configure the console from ``args`` (``--log-level``, ``--log-format``), run ``main`` and return its exit
    code. An error lakeforge raises on purpose (``LakeforgeError``) prints one ``error:`` line and exits with the
    error's code (``lakeforge.errors``: 2 input or configuration, 5 data quality; 1, with the traceback, for
    infrastructure failures); anything else is a bug: traceback, exit 1."""
    logs.configure(getattr(args, "log_level", "INFO"), getattr(args, "log_format", "text"))
    try:
        return main() or 0
    except LakeforgeError as exc:
        if exc.exit_code == EXIT_FAILURE:
            log.exception("job failed")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:  # noqa: BLE001 - anything else is a bug or an infrastructure failure: show it all
        log.exception("job failed")
        return EXIT_FAILURE
