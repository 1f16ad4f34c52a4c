"""What every job shares: its arguments, logging, and turning lakeforge's own errors into a clear message and
the exit code of ``lakeforge.errors``.

Jobs stay thin: parse arguments, load settings, build the session, call one library function.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

from lakeforge.errors import EXIT_FAILURE, EXIT_INPUT, LakeforgeError

__all__ = ["EXIT_FAILURE", "EXIT_INPUT", "add_promote_option", "job_parser", "run_job"]


def job_parser(description: str, job_file: str) -> argparse.ArgumentParser:
    """Arguments every job takes; ``job_file`` (the job's ``__file__``) locates the default conf/."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--env", required=True, help="environment: conf/<env>.yaml overlays conf/base.yaml")
    parser.add_argument("--conf-dir", default=str(Path(job_file).resolve().parent.parent / "conf"),
                        help="folder holding base.yaml, <env>.yaml and sources/ (default: the project's conf/)")
    parser.add_argument("--master", default=None, help="Spark master when not launched by spark-submit")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def add_promote_option(parser: argparse.ArgumentParser) -> None:
    """``--promote`` for jobs that train: how the registry gate treats the new version."""
    parser.add_argument("--promote", choices=("never", "gate", "always"), default="gate",
                        help="gate (default): champion only if it clears model.min_auc and beats the champion by "
                             "model.min_improvement on the same holdout")


def run_job(main: Callable[[], int | None], log_level: str = "INFO") -> int:
    """Run ``main`` and return its exit code. An error lakeforge raises on purpose (``LakeforgeError``) prints one
    ``error:`` line and exits with the error's code (``lakeforge.errors``: 2 input or configuration, 5 data
    quality; 1, with the traceback, for infrastructure failures); anything else is a bug: traceback, exit 1."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "urllib3", "alembic", "XGBoost-PySpark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return main() or 0
    except LakeforgeError as exc:
        if exc.exit_code == EXIT_FAILURE:
            logging.getLogger("lakeforge").exception("job failed")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:  # noqa: BLE001 - anything else is a bug or an infrastructure failure: show it all
        logging.getLogger("lakeforge").exception("job failed")
        return EXIT_FAILURE
