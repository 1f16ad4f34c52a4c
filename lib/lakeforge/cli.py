"""What every job shares: its arguments, logging, and turning known failures into a clear message and exit code.

Jobs stay thin: parse arguments, load settings, build the session, call one library function.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

from lakeforge.config import ConfigError
from lakeforge.ingest.read import BatchRejectedError
from lakeforge.jars import JarResolutionError
from lakeforge.score import SignatureMismatchError
from lakeforge.spark import JavaNotFoundError
from lakeforge.train.registry import ModelNotFoundError

# Failures whose message already says what is wrong and how to fix it: no traceback for these.
USER_ERRORS = (ConfigError, BatchRejectedError, JarResolutionError, JavaNotFoundError, ModelNotFoundError,
               SignatureMismatchError, FileNotFoundError, KeyError, ValueError)
EXIT_USER_ERROR = 2
EXIT_FAILURE = 1


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
    """Run ``main``; known failures print one ``error:`` line (exit 2), others a traceback (exit 1)."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "urllib3", "alembic", "XGBoost-PySpark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return main() or 0
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception:  # noqa: BLE001 - anything else is a bug or an infrastructure failure: show it all
        logging.getLogger("lakeforge").exception("job failed")
        return EXIT_FAILURE
