"""One Spark session for the whole suite (local[2], Delta on, UI off, 2 shuffle partitions) and helpers that
give each test its own lakehouse folder and MLflow store."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from lakeforge.config import MlflowSettings, Settings, SparkSettings, StorageSettings, load_settings

ROOT = Path(__file__).resolve().parents[1]
TEST_PII_KEY = "test-key-0123456789abcdef"
# spark-submit.sh runs jobs with this interpreter (not always .venv's): the Spark 3.5 lane tests its own line.
os.environ.setdefault("LAKEFORGE_PYTHON", sys.executable)
# The longest test files first: under pytest-xdist (make test: -n 2 --dist loadfile) a file runs whole on one
# worker, and a long one started last would leave the other worker idle at the end.
SLOWEST_FIRST = ("test_object_storage", "test_public_datasets", "test_standalone", "test_notebooks", "test_pii_at_rest",
                 "test_resume", "test_pipeline_e2e", "test_train_deep", "test_train", "test_tuning", "test_score",
                 "test_ingest_stream", "test_ingest_kafka", "test_launch", "test_monitor", "test_ingest", "test_exit_codes")
# local-cluster executors copy the application's jars (about 170 MB an application) into $SPARK_HOME/work (the
# local-cluster worker takes no work-dir setting), inside the venv, where nothing removes them: the run removes
# the application folders it added there (its subprocesses' too) when it ends. Under pytest-xdist (-n) only the
# controller does, after every worker has ended: a worker that finished first would otherwise remove the folders
# of a local-cluster application another worker is still running.
_SPARK_WORK = Path(importlib.util.find_spec("pyspark").origin).parent / "work"
_WORK_BEFORE = set(os.listdir(_SPARK_WORK)) if _SPARK_WORK.is_dir() else set()


def _xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session):
    """Under pytest-xdist, the controller builds the wheel ./spark-submit.sh ships (lib/lakeforge/launch.py,
    build/dist/<hash of lib/>) before the workers start: two jobs launched at once would otherwise both build it
    in the same folder (setuptools' build/ and pip's non-atomic copy of the wheel) while one of them reads it."""
    config = session.config
    if _xdist_worker(config) or getattr(config.option, "dist", "no") == "no":
        return
    from lakeforge.launch import build_wheel

    try:
        build_wheel(ROOT)
    except Exception:  # noqa: BLE001 - the tests that launch jobs report it
        pass


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], len(rank)))


def pytest_unconfigure(config):
    if _SPARK_WORK.is_dir() and not _xdist_worker(config):
        for app in set(os.listdir(_SPARK_WORK)) - _WORK_BEFORE:
            shutil.rmtree(_SPARK_WORK / app, ignore_errors=True)


# Every test session, the shared fixture's and those of the scripts tests run in their own processes
# (tests/support): the toy tables need no more than 2 partitions anywhere. Delta's default of 50 tasks to rebuild a
# table's snapshot cost a local-cluster run of tests/support/deep_resume.py 169 s instead of 120 s.
SMALL_SESSION = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.databricks.delta.snapshotPartitions": "2",
}


@pytest.fixture(scope="session")
def spark(tmp_path_factory, request):
    from pyspark.sql import SparkSession

    from lakeforge.spark import configure_spark_with_lakeforge, delta_jars_for, with_kafka_connector

    settings = SparkSettings(master="local[2]", app_name="lakeforge-tests", jar_cache=str(ROOT / ".cache" / "jars"),
                             packages=load_settings("local", ROOT / "conf").spark.packages)
    if any(item.module.__name__.endswith(".test_ingest_kafka") for item in request.session.items):
        settings = with_kafka_connector(settings)  # as a kafka stream job's session has it (and only then)
    builder = configure_spark_with_lakeforge(
        SparkSession.builder, settings, delta_jars=delta_jars_for(settings),
        extra_conf={
            **SMALL_SESSION,
            "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse")),
            "spark.driver.memory": "4g",
            # the job_runs cost report reads Spark's event log back
            "spark.eventLog.enabled": "true",
            "spark.eventLog.dir": tmp_path_factory.mktemp("spark-events").as_uri(),
            "spark.eventLog.compress": "false",
        },
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def settings_for(tmp_path: Path, env: str = "local", conf_dir: Path = ROOT / "conf", **updates) -> Settings:
    """The repository's settings for ``env`` with storage and MLflow moved under ``tmp_path``."""
    base = load_settings(env, conf_dir)
    storage = StorageSettings(root=str(tmp_path / "lakehouse"), landing=str(tmp_path / "landing"))
    mlflow = MlflowSettings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                            artifact_root=(tmp_path / "artifacts").as_uri(), experiment="lakeforge-tests")
    return base.model_copy(update={"storage": storage, "mlflow": mlflow, "pii_key": SecretStr(TEST_PII_KEY), **updates})


@pytest.fixture
def conf_copy(tmp_path) -> Path:
    """A writable copy of conf/ for tests that edit configuration files."""
    target = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", target)
    return target


def pytest_configure(config):
    config.addinivalue_line("markers", "standalone: runs jobs on a real Spark standalone cluster (master + 2 workers, "
                                       "tests/support/standalone.py); select with -m standalone, skip with -m 'not standalone'")
    config.addinivalue_line("markers", "object_storage: lakeforge on a local S3 + DynamoDB endpoint (tests/test_object_storage.py); "
                                       "in `make test`, and alone in `make test-s3`")
    if _xdist_worker(config):
        _give_main_a_spec()


def _give_main_a_spec() -> None:
    """A pytest-xdist worker runs as ``python -c`` (execnet): its ``__main__`` has neither ``__spec__`` nor
    ``__file__``, which pyspark.sql.connect's import (mlflow.spark.log_model imports it) takes for a doctest run
    and, without Spark Connect's dependencies (grpcio), answers with sys.exit(0) in the middle of the test. The spec
    ``python -m pytest`` would give (named __main__, which multiprocessing's spawn skips) makes the import fail with
    the ImportError mlflow expects, as it does in a run without -n."""
    import importlib.machinery

    main = sys.modules["__main__"]
    if getattr(main, "__spec__", None) is None and not hasattr(main, "__file__"):
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    """A Spark standalone cluster on loopback (one master, two 1-core workers) for one test module."""
    from tests.support import standalone

    with standalone.cluster(tmp_path_factory.mktemp("standalone")) as running:
        yield running


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on a free loopback port, for the whole session."""
    from tests.support import postgres as pg

    server, stop = pg.start()
    try:
        yield server
    finally:
        stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on a free loopback port: SQLite backend, artifacts served through the server."""
    import subprocess
    import sys
    import time
    import urllib.request

    from lakeforge.local_kafka import free_port

    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    log = open(root / "server.log", "w")
    server = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", (root / "artifacts").as_uri()],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        raise RuntimeError(f"mlflow server did not start; see {root / 'server.log'}")
    try:
        yield url, root
    finally:
        import os
        import signal
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def toy_gold(spark, tmp_path_factory):
    """3,000 toy rows (tests/support/toy.py) as a gold table at version 0."""
    from lakeforge.tables import GoldTable
    from tests.support.toy import TOY_SCHEMA, toy_rows

    rows = toy_rows(3000)
    path = str(tmp_path_factory.mktemp("gold") / "toy")
    spark.createDataFrame(rows, TOY_SCHEMA).write.format("delta").save(path)
    return GoldTable(path, 0, len(rows), True, {})
