"""Builder-in, builder-out SparkSession configuration, in the manner of ``configure_spark_with_delta_pip``.

Nothing here creates a session: jobs, notebooks and the test fixture call ``.getOrCreate()`` themselves.

    from pyspark.sql import SparkSession
    builder = configure_spark_with_lakeforge(SparkSession.builder, settings.spark, delta_jars=jars)
    spark = builder.getOrCreate()

When the Python process was started by ``spark-submit`` (the JVM already runs), the launcher's settings
win: master, jars and any ``--conf`` given there are left alone, and only missing keys are added.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from pyspark.sql import SparkSession

from lakeforge.config import Settings, SparkSettings
from lakeforge.errors import JavaNotFoundError
from lakeforge.jars import delta_coordinates, kafka_connector_coordinates, resolve_jars

MIN_JAVA = 17
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def java_major_version(java: str | None = None) -> int:
    """Major version of the ``java`` Spark will use (``$JAVA_HOME/bin/java`` first, then ``PATH``)."""
    if java is None:
        home = os.environ.get("JAVA_HOME")
        java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise JavaNotFoundError(
            f"Spark needs Java {MIN_JAVA} or newer, and no `java` was found (JAVA_HOME={os.environ.get('JAVA_HOME')!r}, "
            "PATH has none). Install it (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME.")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise JavaNotFoundError(f"could not read the version of {java} from: {out.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major  # "1.8.0" means Java 8


def check_java(java: str | None = None) -> int:
    """Fail early, with the fix, when Java is missing or older than Spark 4 supports."""
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise JavaNotFoundError(
            f"Spark 4 needs Java {MIN_JAVA} or newer, found Java {major} ({java or shutil.which('java')}). "
            "Install openjdk-17 and point JAVA_HOME at it.")
    return major


def launched_by_spark_submit() -> bool:
    """True when this Python process runs inside an application started by ``spark-submit``."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def is_local_master(master: str | None) -> bool:
    return bool(master) and (master == "local" or master.startswith(("local[", "local-cluster[")))


def jar_coordinates(settings: SparkSettings) -> tuple[str, ...]:
    """Maven coordinates an environment needs: Delta's (unless the platform provides Delta) and ``packages``."""
    return (() if settings.delta_jars == "provided" else delta_coordinates()) + tuple(settings.packages)


def with_kafka_connector(settings: SparkSettings) -> SparkSettings:
    """``settings`` with Spark's Kafka connector for this pyspark in ``packages``, unless they name one already or
    the platform provides its jars (``delta_jars: provided``: Databricks ships the connector; on EMR add it to
    ``spark.packages`` in the environment's YAML)."""
    if settings.delta_jars == "provided" or any(":spark-sql-kafka-0-10_" in p for p in settings.packages):
        return settings
    return settings.model_copy(update={"packages": settings.packages + kafka_connector_coordinates()})


def job_spark_settings(settings: Settings, job: str, source: str | None = None) -> SparkSettings:
    """The Spark settings a job runs with: the environment's, plus the Kafka connector for a ``stream`` job on a
    kafka source (only that job needs it, so no other job ships or resolves it)."""
    found = settings.sources.get(source) if source else None
    if job == "stream" and found is not None and found.kind == "kafka":
        return with_kafka_connector(settings.spark)
    return settings.spark


def delta_jars_for(settings: SparkSettings) -> tuple[str, ...]:
    """Jar paths to add: Delta's (unless the platform provides Delta) and ``settings.packages``; none when
    spark-submit already shipped them."""
    if launched_by_spark_submit():
        return ()
    coordinates = jar_coordinates(settings)
    if not coordinates:
        return ()
    return tuple(str(j) for j in resolve_jars(Path(settings.jar_cache), coordinates).spark_jars)


def configure_spark_with_lakeforge(
    builder: SparkSession.Builder,
    settings: SparkSettings,
    *,
    delta_jars: Sequence[str] = (),
    master: str | None = None,
    extra_conf: dict[str, str] | None = None,
) -> SparkSession.Builder:
    """Add Delta (extensions, catalog, jars), the environment's Spark settings and a local Python.

    ``master`` overrides ``settings.master``; both are ignored under spark-submit. ``extra_conf`` is
    applied last (tests use it for small shuffle partitions and a temporary warehouse).
    """
    if not isinstance(builder, SparkSession.Builder):
        raise TypeError(f"expected a SparkSession.Builder, got {type(builder).__name__}")
    conf: dict[str, str] = {
        "spark.app.name": settings.app_name,
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        **settings.conf,
        **(extra_conf or {}),
    }
    if delta_jars:
        conf["spark.jars"] = ",".join(delta_jars)

    if launched_by_spark_submit():
        from pyspark import SparkConf, SparkContext

        SparkContext._ensure_initialized()  # joins spark-submit's JVM: without it SparkConf() is empty
        already = dict(SparkConf().getAll())  # what spark-submit set: keep it
        conf = {k: v for k, v in conf.items() if k not in already}
        effective_master = already.get("spark.master")
    else:
        effective_master = master or settings.master
        if effective_master:
            conf["spark.master"] = effective_master

    if is_local_master(effective_master):
        # Workers of a local master must run this interpreter, not whatever `python3` is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        conf.setdefault("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])

    ensure_local_event_log_dir(conf)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder


@dataclass
class _Hold:
    """Who holds one runtime setting of one session through ``session_conf``, innermost last."""
    original: str | None  # the value before the first holder came
    holders: list[tuple[int, str]] = field(default_factory=list)  # (thread, value)


_HOLDS: dict[tuple[str, str], _Hold] = {}
_HOLDS_CHANGED = threading.Condition()


def _session_id(spark: SparkSession) -> str:
    jsession = getattr(spark, "_jsparkSession", None)  # Python wrappers of one JVM session share its settings
    return str(jsession.sessionUUID()) if jsession is not None else str(getattr(spark, "session_id", id(spark)))


def _may_take(hold: _Hold | None, thread: int, value: str) -> bool:
    """Free, held by all at ``value`` (shared), or held by ``thread`` alone (a nested override of its own)."""
    return hold is None or all(v == value for _, v in hold.holders) or all(t == thread for t, _ in hold.holders)


@contextmanager
def session_conf(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Set runtime SQL settings for the body only; each key gets its previous value back (or is unset).

    Safe for threads sharing one session (three scorers of one batch at once): threads asking for the same value
    share it, and it is restored when the last of them leaves; a thread asking for another value waits until the
    holders have left (a thread may override its own value in a nested call). A setting is session-wide, so any
    other Spark call on the session meanwhile sees it: give concurrent jobs their own ``spark.newSession()``.
    """
    if not settings:  # most writes pass none: no call to the JVM, no lock
        yield
        return
    session, thread = _session_id(spark), threading.get_ident()
    keys = [(session, key) for key in settings]
    with _HOLDS_CHANGED:
        _HOLDS_CHANGED.wait_for(lambda: all(_may_take(_HOLDS.get(k), thread, settings[k[1]]) for k in keys))
        for held in keys:
            hold = _HOLDS.setdefault(held, _Hold(spark.conf.get(held[1], None)))
            hold.holders.append((thread, settings[held[1]]))
            spark.conf.set(held[1], settings[held[1]])
    try:
        yield
    finally:
        with _HOLDS_CHANGED:
            for held in keys:
                hold = _HOLDS[held]
                hold.holders.pop(max(i for i, (t, _) in enumerate(hold.holders) if t == thread))
                value = hold.holders[-1][1] if hold.holders else hold.original
                if not hold.holders:
                    del _HOLDS[held]
                if value is None:
                    spark.conf.unset(held[1])
                else:
                    spark.conf.set(held[1], value)
            _HOLDS_CHANGED.notify_all()


def ensure_local_event_log_dir(conf: dict[str, str]) -> None:
    """Spark refuses to start when a local ``spark.eventLog.dir`` is missing: create it (other file systems
    create their folders on write)."""
    target = conf.get("spark.eventLog.dir", "")
    if conf.get("spark.eventLog.enabled", "false").lower() == "true" and target.startswith("file:"):
        from urllib.parse import urlparse

        Path(urlparse(target).path).mkdir(parents=True, exist_ok=True)


def lakeforge_builder(settings: SparkSettings, master: str | None = None) -> SparkSession.Builder:
    """``SparkSession.builder`` configured for ``settings``, Delta's jars resolved from the project cache.

    The caller decides when to ``.getOrCreate()`` (jobs, notebooks and the test fixture do). Outside
    spark-submit this process starts the JVM, so Java is checked first.
    """
    if not launched_by_spark_submit():
        check_java()
    return configure_spark_with_lakeforge(SparkSession.builder, settings, delta_jars=delta_jars_for(settings),
                                          master=master)
