"""A local S3 (and DynamoDB) endpoint for the tests, from PyPI's ``moto[server]``: one server process on a free
loopback port, buckets created up front, credentials handed to clients through environment variables only, and the
server stopped in ``finally``.

    with s3.endpoint(buckets=("lakeforge",)) as server, s3.exported(server):
        server.url                     # http://127.0.0.1:PORT (S3 path-style and DynamoDB on the same port)
        server.keys("lakeforge", "lakehouse/silver/flights/_delta_log/")
        subprocess.run([...], env=dict(os.environ))   # AWS_ACCESS_KEY_ID ... MLFLOW_S3_ENDPOINT_URL exported

Moto applies a conditional write (S3 ``If-None-Match``, DynamoDB ``Expected`` / ``ConditionExpression``) as a
check followed by a write; under a threaded server two requests could interleave between the two. The real services
make each such request atomic, and the commit protocols tested here rely on that, so this server runs DynamoDB
calls and conditional S3 writes one at a time (everything else stays concurrent). It also keeps the type of a BOOL
written by a legacy ``UpdateItem`` (moto 5.2 turns it into a string; Delta's DynamoDB commit coordinator reads it
back), and can make the PUT of Delta commit files under a key prefix slow (``slow_commits``), as on a slow link.

``python -m tests.support.s3 serve`` runs the server (the fixture starts it so); ``python -m tests.support.s3
append ...`` is one Delta writer of the multi-writer race in tests/test_object_storage.py: a Spark driver of its
own (a "cluster") that appends one row per commit to a table and reports which commits it saw succeed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
# Moto accepts any key pair; these are what the clients sign with. Never real credentials.
ACCESS_KEY_ID = "lakeforge-test-key"
SECRET_ACCESS_KEY = "lakeforge-test-secret"  # a dummy: the local endpoint takes any


@dataclass
class Endpoint:
    url: str
    region: str = REGION
    buckets: tuple[str, ...] = ()
    log: Path | None = None
    _process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def env(self) -> dict[str, str]:
        """What a client needs, as environment variables: the credentials and region (AWS SDKs, boto3, Hadoop's
        S3A and Delta's DynamoDB client read them), MLflow's S3 endpoint, and no instance metadata lookups."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "MLFLOW_S3_ENDPOINT_URL": self.url,
        }

    def client(self, service: str = "s3"):
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=self.region,
                            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (all pages)."""
        found = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += [item["Key"] for item in page.get("Contents", [])]
        return found

    def put_file(self, bucket: str, key: str, path: Path) -> None:
        self.client().upload_file(str(path), bucket, key)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()


def start(buckets: tuple[str, ...] = ("lakeforge",), region: str = REGION, workdir: Path | None = None,
          timeout: float = 60, slow_commits: tuple[str, float] | None = None) -> Endpoint:
    """Start ``python -m tests.support.s3 serve`` in its own process group on a free port; create ``buckets``.
    ``slow_commits=("key/prefix/", seconds)``: PUTs of Delta commit files under that key prefix (any bucket) take
    that long."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="lakeforge-s3-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port_file, log = workdir / "port", workdir / "server.log"
    port_file.unlink(missing_ok=True)
    with open(log, "w") as out:
        slow = ["--slow-commits", slow_commits[0], str(slow_commits[1])] if slow_commits else []
        process = subprocess.Popen([sys.executable, "-m", "tests.support.s3", "serve", "--port-file", str(port_file), *slow],
                                   cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the S3 endpoint exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
            if port_file.is_file() and port_file.read_text().strip():
                endpoint = Endpoint(f"http://127.0.0.1:{port_file.read_text().strip()}", region, tuple(buckets), log,
                                    process)
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", endpoint.port), timeout=2):
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the S3 endpoint did not answer within {timeout:.0f} s; see {log}")
        client = endpoint.client()
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        return endpoint
    except BaseException:
        if endpoint is not None:
            endpoint.stop()
        elif process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        raise


@contextlib.contextmanager
def endpoint(buckets: tuple[str, ...] = ("lakeforge",), region: str = REGION, workdir: Path | None = None,
             slow_commits: tuple[str, float] | None = None) -> Iterator[Endpoint]:
    server = start(buckets, region, workdir, slow_commits=slow_commits)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def exported(server: Endpoint) -> Iterator[dict[str, str]]:
    """The endpoint's credentials, region and MLflow endpoint in ``os.environ`` for the body (child processes
    inherit them), each variable restored afterwards."""
    previous = {key: os.environ.get(key) for key in server.env}
    os.environ.update(server.env)
    try:
        yield server.env
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---------------------------------------------------------------------------------------------------------------
# The server process


class _Harness:
    """WSGI middleware: DynamoDB calls and conditional S3 writes one at a time (see the module's docstring); and,
    when asked, PUTs of Delta commit files (``_delta_log/<version>.json``) under ``slow_prefix`` take
    ``slow_seconds`` before the object appears, as on a slow link: the race tests widen the window between a
    writer's "does version N exist?" and its version N becoming visible with it."""

    COMMIT_FILE = re.compile(r"/_delta_log/\d{20}\.json$")

    def __init__(self, app, slow_prefix: str | None = None, slow_seconds: float = 0.0):
        self.app = app
        self.lock = threading.Lock()
        self.slow_prefix, self.slow_seconds = slow_prefix, slow_seconds

    def __call__(self, environ, start_response):
        method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", "")
        if (self.slow_prefix and method == "PUT" and self.COMMIT_FILE.search(path)
                and path.split("/", 2)[-1].startswith(self.slow_prefix)):
            time.sleep(self.slow_seconds)
        conditional = (environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB")
                       or (method in ("PUT", "POST") and ("HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ)))
        if not conditional:
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))  # the whole response made while the lock is held


def _keep_typed_attribute_updates() -> None:
    """Moto 5.2 stores a legacy ``UpdateItem`` ``AttributeUpdates`` PUT of a BOOL (or B, BS) value as a string
    ({"BOOL": true} becomes {"S": "True"}); DynamoDB keeps the type. Delta's DynamoDB commit coordinator writes
    ``hasAcceptedCommits`` that way and reads it back with ``getBOOL()``, so store such values as given."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    original = Item.update_with_attribute_updates
    if getattr(original, "_lakeforge", False):
        return

    def update_with_attribute_updates(self, attribute_updates):
        rest = {}
        for name, update in attribute_updates.items():
            value = update.get("Value") or {}
            if update.get("Action", "PUT") == "PUT" and len(value) == 1 and next(iter(value)) in ("BOOL", "B", "BS"):
                self.attrs[name] = DynamoType(value)
            else:
                rest[name] = update
        original(self, rest)

    update_with_attribute_updates._lakeforge = True
    Item.update_with_attribute_updates = update_with_attribute_updates


def serve(port_file: Path, host: str = "127.0.0.1", port: int = 0, slow_prefix: str | None = None,
          slow_seconds: float = 0.0) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    _keep_typed_attribute_updates()
    app = _Harness(DomainDispatcherApplication(create_backend_app), slow_prefix, slow_seconds)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.rename(port_file)
    server.serve_forever()


# ---------------------------------------------------------------------------------------------------------------
# One writer of the multi-writer race


RACE_SCHEMA = "writer STRING, seq INT, payload STRING"
COORDINATED_DEFAULTS = ("spark.databricks.delta.properties.defaults.coordinatedCommits.commitCoordinator-preview",
                        "spark.databricks.delta.properties.defaults.coordinatedCommits.commitCoordinatorConf-preview")


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout:.0f} s")
        time.sleep(0.02)


def _meet(barrier: Path, tag: str, me: str, peers: list[str], timeout: float) -> None:
    """Wait until every writer in ``peers`` reached ``tag`` (a file per writer in the shared barrier folder)."""
    (barrier / f"{tag}-{me}").touch()
    for peer in peers:
        _wait_for(barrier / f"{tag}-{peer}", timeout)


def _create(spark, table: str, coordinated: bool) -> None:
    """The race's table, empty. ``coordinated=False``: created without the environment's coordinated-commits
    defaults, so that its commits go through Delta's default S3 log store."""
    saved = {} if coordinated else {key: spark.conf.get(key, None) for key in COORDINATED_DEFAULTS}
    for key, value in saved.items():
        if value is not None:
            spark.conf.unset(key)
    try:
        spark.sql(f"CREATE TABLE delta.`{table}` ({RACE_SCHEMA}) USING delta")
    finally:
        for key, value in saved.items():
            if value is not None:
                spark.conf.set(key, value)


def append_race(args: argparse.Namespace) -> int:
    """Open a Spark session as lakeforge's jobs do (``lakeforge_builder``: the environment's jars from the cache and
    its spark.conf); then, per table in order: create it (``--create``), signal ready, wait for the go, and append
    ``--commits`` one-row commits, each tagged ``<writer>-<seq>`` in its commitInfo's userMetadata. What each
    commit returned (ok, or the error) goes to ``--out`` as JSON."""
    from lakeforge.config import load_settings
    from lakeforge.spark import lakeforge_builder

    settings = load_settings(args.env, args.conf_dir)
    # one core and a small heap each: two of these run at once on a 2-core machine
    spark = lakeforge_builder(settings.spark, master="local[1]").config("spark.driver.memory", "1g").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    barrier = Path(args.barrier)
    report: dict = {"writer": args.writer, "tables": {}}
    try:
        for spec in args.table:
            kind, _, table = spec.partition("=")
            name = table.rstrip("/").rsplit("/", 1)[1]
            if args.create:
                _create(spark, table, coordinated=kind == "coordinated")
            (barrier / f"ready-{name}-{args.writer}").touch()
            _wait_for(barrier / f"go-{name}", args.timeout)
            outcomes = []
            for seq in range(args.commits):
                if args.peers:  # lockstep: every writer starts commit seq at the same moment
                    _meet(barrier, f"{name}-{seq}", args.writer, args.peers.split(","), args.timeout)
                started = time.monotonic()
                try:
                    (spark.createDataFrame([(args.writer, seq, "x" * 64)], RACE_SCHEMA).coalesce(1)
                     .write.format("delta").mode("append").option("userMetadata", f"{args.writer}-{seq}").save(table))
                    outcomes.append({"seq": seq, "ok": True, "seconds": round(time.monotonic() - started, 3)})
                except Exception as exc:  # noqa: BLE001 - the report says what failed
                    outcomes.append({"seq": seq, "ok": False, "seconds": round(time.monotonic() - started, 3),
                                     "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"})
            report["tables"][table] = outcomes
    finally:
        Path(args.out).write_text(json.dumps(report, indent=1))
        spark.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.s3")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run the S3/DynamoDB endpoint until SIGTERM")
    run.add_argument("--port-file", type=Path, required=True)
    run.add_argument("--port", type=int, default=0)
    run.add_argument("--slow-commits", nargs=2, metavar=("PREFIX", "SECONDS"),
                     help="PUTs of Delta commit files under the key PREFIX take SECONDS")
    race = sub.add_parser("append", help="one writer of the multi-writer race")
    race.add_argument("--env", required=True)
    race.add_argument("--conf-dir", type=Path, required=True)
    race.add_argument("--table", action="append", required=True, metavar="KIND=PATH",
                      help="coordinated=s3a://... or single-driver=s3a://... (repeatable, raced in order)")
    race.add_argument("--peers", default="", help="comma-separated writers to start each commit in lockstep with")
    race.add_argument("--create", action="store_true", help="create the tables first (one writer does)")
    race.add_argument("--writer", required=True)
    race.add_argument("--commits", type=int, default=10)
    race.add_argument("--barrier", required=True, help="folder of the ready/go files")
    race.add_argument("--timeout", type=float, default=300)
    race.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "serve":
        prefix, seconds = args.slow_commits or (None, 0)
        serve(args.port_file, port=args.port, slow_prefix=prefix, slow_seconds=float(seconds))
        return 0
    return append_race(args)


if __name__ == "__main__":
    sys.exit(main())
