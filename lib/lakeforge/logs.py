"""The console of a job, configured once at the edge (``lakeforge.cli.run_job``): lakeforge's own lines with their
details as ``key=value`` pairs (or one JSON object per line with ``--log-format json``), other libraries' lines
below WARNING dropped, one line when a stage starts and ends, and a progress line for long-running Spark stages.

Library code puts the details of a line in fields, with ``kv``::

    log.info("gold table written", extra=kv(path=path, version=3, rows=1200))
    # text: 2026-05-01 12:00:00,123 INFO lakeforge.features: gold table written path=/lake/gold version=3 rows=1200
    # json: {"time": "2026-05-01T12:00:00.123+00:00", "level": "INFO", "logger": "lakeforge.features",
    #        "msg": "gold table written", "path": "/lake/gold", "version": 3, "rows": 1200}

A stage is timed with ``stage``; its end line carries the rows and the path its result offers::

    with stage("gold", log) as gold:
        table = gold.done(build_gold_table(spark, settings))
    # ... INFO lakeforge.pipeline: stage=gold event=start
    # ... INFO lakeforge.pipeline: stage=gold event=end rows=336776 seconds=41.2 wrote=/lake/gold

Only the standard library is imported here, so a job's ``--help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, is_dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

__all__ = ["FORMATS", "JsonFormatter", "OnlyOwnBelowWarning", "SparkProgress", "Stage", "TextFormatter", "configure",
           "kv", "quiet_libraries", "result_fields", "stage"]

FORMATS = ("text", "json")
FIELDS = "lakeforge_fields"  # the LogRecord attribute ``kv`` sets
HANDLER_NAME = "lakeforge-console"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Loggers of other libraries, set to WARNING. Some (MLflow, Hyperopt, xgboost.spark) set their own level again
#: when imported or used, which is why the console handler also drops every non-lakeforge record below WARNING.
QUIET_LOGGERS = ("py4j", "urllib3", "alembic", "sqlalchemy", "mlflow", "hyperopt", "optuna", "matplotlib", "PIL",
                 "XGBoost-PySpark", "xgboost", "numexpr", "fsspec", "git", "botocore", "boto3", "s3transfer", "azure",
                 "google", "filelock", "asyncio", "torch", "h5py", "numba")

#: Set (unless already set) when lakeforge owns the console: MLflow logs through the root logger at WARNING and
#: shows no artifact upload/download bars; tqdm bars (MLflow, Hyperopt) are off.
QUIET_ENVIRONMENT = {"MLFLOW_CONFIGURE_LOGGING": "false", "MLFLOW_LOGGING_LEVEL": "WARNING",
                     "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "TQDM_DISABLE": "1"}

log = logging.getLogger(__name__)


def kv(**fields: Any) -> dict[str, dict[str, Any]]:
    """``extra=`` of a log call whose details are fields: ``log.info("scored", extra=kv(rows=10, table=path))``."""
    return {FIELDS: fields}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return getattr(record, FIELDS, None) or {}


def _plain(value: Any) -> Any:
    """A value JSON can hold: NaN and infinities as strings, tuples as lists, anything else unknown as str."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".6g")
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        value = json.dumps(_plain(value), separators=(",", ":"), sort_keys=isinstance(value, dict))
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)
    return text


def render(fields: dict[str, Any]) -> str:
    """``key=value`` pairs, values with spaces or quotes quoted; None fields are left out."""
    return " ".join(f"{key}={_text(value)}" for key, value in fields.items() if value is not None)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        pairs = render(fields_of(record))
        if not pairs:
            return line
        return f"{line.rstrip() if not record.message else line} {pairs}"

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).rstrip("\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, msg (when not empty), the fields, and the
    traceback as ``exc``; a field named like one of those keys is kept as ``field_<name>``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                               "level": record.levelname, "logger": record.name}
        message = record.getMessage()
        if message:
            out["msg"] = message
        for key, value in fields_of(record).items():
            out[key if key not in out else f"field_{key}"] = _plain(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


def is_own(name: str) -> bool:
    return name in ("lakeforge", "__main__") or name.startswith("lakeforge.")


class OnlyOwnBelowWarning(logging.Filter):
    """Passes lakeforge's records at any level and every other library's from WARNING up."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or is_own(record.name)


def configure(level: str | int = "INFO", fmt: str = "text", stream=None) -> bool:
    """Make lakeforge own the console: one handler on the root logger (stderr unless ``stream``) in ``fmt``, other
    libraries below WARNING dropped, Python warnings logged (one line each), MLflow and tqdm quiet
    (``QUIET_ENVIRONMENT``).

    Calling it again replaces lakeforge's handler. When the host configured logging first (pytest, a notebook,
    Databricks: the root logger has handlers that are not lakeforge's), nothing changes and it returns False.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {FORMATS}")
    root = logging.getLogger()
    ours = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
    if len(ours) != len(root.handlers):
        return False
    for handler in ours:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(OnlyOwnBelowWarning())
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    warnings.showwarning = _log_warning
    global _owns_console
    _owns_console = True
    return True


_owns_console = False


def quiet_libraries() -> None:
    """Once a job's imports are done (``lakeforge.cli.job_context`` calls this), route what the libraries imported
    by then print around logging through the console, when lakeforge owns it: MLflow's ``eprint`` lines
    ("Successfully registered model ...", printed to a stream MLflow switches back on by itself) become INFO
    records of ``mlflow.events``; Optuna's records go through the root logger instead of its own handler. Like
    any other library's INFO records, the console then drops them."""
    if not _owns_console:
        return
    mlflow_logging = sys.modules.get("mlflow.utils.logging_utils")
    if mlflow_logging is not None and not logging.getLogger("mlflow").handlers:
        events = logging.getLogger("mlflow.events")

        def write(text: str) -> None:
            if text.strip():
                events.info(text.strip())

        mlflow_logging.MLFLOW_LOGGING_STREAM.write = write
    optuna_logging = sys.modules.get("optuna.logging")
    if optuna_logging is not None:
        optuna_logging.disable_default_handler()
        optuna_logging.enable_propagation()


_show_warning = warnings.showwarning


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one WARNING line of ``py.warnings`` (category: message, at=file:line) rather than the
    two lines (with the source line) ``warnings`` prints; one written to a given ``file`` goes there as before."""
    if file is not None:
        _show_warning(message, category, filename, lineno, file, line)
        return
    logging.getLogger("py.warnings").warning("%s: %s", category.__name__, message, extra=kv(at=f"{filename}:{lineno}"))


ROW_FIELDS = ("rows_written", "rows", "rows_read")
PATH_FIELDS = ("table", "path")


def result_fields(result: Any) -> dict[str, Any]:
    """``rows`` and ``wrote`` of a stage's result, from the first of its fields ``ROW_FIELDS`` / ``PATH_FIELDS``
    it has (a list of results: rows summed, paths joined by commas); empty when it has none."""
    if result is None:
        return {}
    if isinstance(result, (list, tuple)) and not is_dataclass(result):
        parts = [result_fields(r) for r in result]
        rows = [p["rows"] for p in parts if "rows" in p]
        paths = list(dict.fromkeys(p["wrote"] for p in parts if "wrote" in p))
        return {**({"rows": sum(rows)} if rows else {}), **({"wrote": ",".join(paths)} if paths else {})}
    out: dict[str, Any] = {}
    rows = next((getattr(result, f) for f in ROW_FIELDS
                 if isinstance(getattr(result, f, None), int) and not isinstance(getattr(result, f), bool)), None)
    if rows is not None:
        out["rows"] = rows
    wrote = next((getattr(result, f) for f in PATH_FIELDS if isinstance(getattr(result, f, None), str)), None)
    if wrote:
        out["wrote"] = wrote
    return out


@dataclass
class Stage:
    """A running stage: ``done(result, **fields)`` gives its end line the result's rows and path (and fields)."""

    name: str
    result: Any = None
    fields: dict[str, Any] = field(default_factory=dict)

    def done(self, result: Any = None, **fields: Any) -> Any:
        self.result = result
        self.fields.update(fields)
        return result


@contextmanager
def stage(name: str, logger: logging.Logger | None = None, **fields: Any) -> Iterator[Stage]:
    """``stage=<name> event=start`` now, then ``stage=<name> event=end rows=<n> seconds=<s> wrote=<path>`` (rows
    and path as far as the result offers them) or, when the body raises, ``event=failed seconds=<s> error=<type>``.
    ``fields`` (a source name ...) go on both lines."""
    logger = logger or log
    current = Stage(name)
    logger.info("", extra=kv(stage=name, event="start", **fields))
    started = time.perf_counter()
    try:
        yield current
    except BaseException as exc:
        logger.info("", extra=kv(stage=name, event="failed", **fields,
                                 seconds=round(time.perf_counter() - started, 1), error=type(exc).__name__))
        raise
    found = result_fields(current.result)
    end = {"stage": name, "event": "end", **fields, "rows": found.get("rows"),
           "seconds": round(time.perf_counter() - started, 1), "wrote": found.get("wrote")}
    end.update(current.fields)  # the body's own fields win (keeping their place)
    logger.info("", extra=kv(**end))


class SparkProgress:
    """``progress job=<id> stage=<id> tasks=<done>/<total> running=<n>`` every ``interval`` seconds for each Spark
    stage running longer than that, when its count of finished tasks changed (or a minute passed): log lines from
    Spark's status tracker rather than a console bar, so they work under spark-submit, in a cluster's driver log
    and with ``--log-format json``. ``start()`` it, and ``stop()`` it in a ``finally`` before stopping the session."""

    HEARTBEAT_SECONDS = 60.0

    def __init__(self, spark: Any, interval: float = 5.0, logger: logging.Logger | None = None) -> None:
        self.interval = interval
        self.logger = logger or logging.getLogger("lakeforge.progress")
        self._spark = spark
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lakeforge-spark-progress", daemon=True)

    def start(self) -> "SparkProgress":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 10)

    def _loop(self) -> None:
        try:
            tracker = self._spark.sparkContext.statusTracker()
        except Exception:  # noqa: BLE001 - a Spark Connect session has no status tracker: no progress lines
            log.debug("no Spark status tracker: no progress lines", exc_info=True)
            return
        active: set[int] = set()
        shown: dict[int, tuple[tuple[int, int], float]] = {}
        while not self._stopped.wait(self.interval):
            try:
                active = self._tick(tracker, active, shown)
            except Exception:  # noqa: BLE001 - progress lines must never fail a job (e.g. while the session stops)
                log.debug("Spark progress not read", exc_info=True)

    def _tick(self, tracker: Any, before: set[int], shown: dict[int, tuple[tuple[int, int], float]]) -> set[int]:
        job_of = {}
        for job_id in tracker.getActiveJobsIds():
            info = tracker.getJobInfo(job_id)
            for stage_id in (info.stageIds if info else ()):
                job_of[stage_id] = job_id
        now, active = time.monotonic(), set()
        for stage_id in sorted(tracker.getActiveStageIds()):
            info = tracker.getStageInfo(stage_id)
            if info is None:
                continue
            active.add(stage_id)
            counts = (info.numCompletedTasks, info.numTasks)
            last = shown.get(stage_id)
            if stage_id in before and (last is None or last[0] != counts or now - last[1] >= self.HEARTBEAT_SECONDS):
                self.logger.info("progress", extra=kv(job=job_of.get(stage_id, "-"), stage=stage_id,
                                                      tasks=f"{counts[0]}/{counts[1]}", running=info.numActiveTasks))
                shown[stage_id] = (counts, now)
        for stage_id in set(shown) - active:
            del shown[stage_id]
        return active
