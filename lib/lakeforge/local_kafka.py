"""A single-node Apache Kafka broker on 127.0.0.1 for the demo and the tests: KRaft mode (broker and controller in
one process, no ZooKeeper), run from Apache Kafka's own jars, which ``lakeforge.jars`` resolves from Maven Central
into the project's jar cache once. Not for production: one node, replication factor 1, data in a temporary folder.

    with local_broker(Path(".cache/jars"), Path("/tmp/kafka"), port=9092) as bootstrap:
        ...  # bootstrap == "127.0.0.1:9092"

``python -m lakeforge.local_kafka --port 9092`` runs one in the foreground until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.demo_data import stage_demo_data
from lakeforge.errors import KafkaBrokerError
from lakeforge.jars import resolve_jars

KAFKA_BROKER = "org.apache.kafka:kafka_2.13:4.4.0"  # Scala 2.13: runs on pyspark 4's scala-library as well as its own


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the tests' servers use it too)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _classpath(jar_cache: Path) -> str:
    jars = [str(j) for j in resolve_jars(jar_cache, (KAFKA_BROKER,)).jars]
    if not any("scala-library" in Path(j).name for j in jars):  # Ivy leaves Scala out: pyspark's serves
        import pyspark

        jars += [str(j) for j in (Path(pyspark.__file__).parent / "jars").glob("scala-library-*.jar")]
    return os.pathsep.join(jars)


def _properties(data: Path, port: int, controller_port: int, partitions: int) -> str:
    return "\n".join([
        "process.roles=broker,controller", "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER", "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={data}", f"num.partitions={partitions}", "auto.create.topics.enable=true",
        "offsets.topic.replication.factor=1", "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1", "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1", "group.initial.rebalance.delay.ms=0",
        "offsets.topic.num.partitions=1", "", ])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def local_broker(jar_cache: Path, workdir: Path | None = None, *, port: int | None = None, partitions: int = 3,
                 heap: str = "512m", timeout: float = 120.0) -> Iterator[str]:
    """Start a broker (topics are created on first use with ``partitions`` partitions); yield its bootstrap
    servers; stop it (and delete its data when ``workdir`` was not given) on exit."""
    java = shutil.which("java") or (Path(os.environ["JAVA_HOME"]) / "bin" / "java" if "JAVA_HOME" in os.environ else None)
    if java is None:
        raise KafkaBrokerError("java not found on PATH (Kafka 4 needs Java 17 or later)")
    owned = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="lakeforge-kafka-")) if owned else Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    controller = free_port()
    config = workdir / "server.properties"
    config.write_text(_properties(workdir / "data", port, controller, partitions))
    classpath = _classpath(Path(jar_cache))
    base = [str(java), f"-Xmx{heap}", "-cp", classpath]
    log = workdir / "broker.log"
    if not (workdir / "data" / "meta.properties").is_file():  # a kept workdir is formatted once
        _format(base, config, timeout)
    with open(log, "w") as out:
        proc = subprocess.Popen([*base, "kafka.Kafka", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_until_serving(proc, port, log, timeout)
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)


def _format(base: list[str], config: Path, timeout: float) -> None:
    fmt = subprocess.run([*base, "kafka.tools.StorageTool", "format", "-t", uuid.uuid4().hex[:22] + "AA",
                          "-c", str(config)], capture_output=True, text=True, timeout=timeout)
    if fmt.returncode != 0:
        raise KafkaBrokerError(f"formatting the broker's storage failed ({fmt.returncode}):\n{(fmt.stdout + fmt.stderr)[-3000:]}")


def _wait_until_serving(proc: subprocess.Popen, port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise KafkaBrokerError(f"the Kafka broker exited with code {proc.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return  # the broker opens its listener last, when it serves requests
        time.sleep(0.25)
    proc.kill()
    raise KafkaBrokerError(f"the Kafka broker did not listen on 127.0.0.1:{port} within {timeout:.0f} s:\n{_tail(log)}")


def produce(frame: DataFrame, bootstrap: str, topic: str) -> int:
    """Send each row of ``frame`` as one message to ``topic``: its ``value`` column (a string, sent as is) and its
    ``key`` column when it has one, with Spark's Kafka writer. Returns the number of messages sent."""
    rows = frame.select("value", *(["key"] if "key" in frame.columns else [])).persist()
    try:  # the write and the count read ``frame`` once
        rows.write.format("kafka").option("kafka.bootstrap.servers", bootstrap).option("topic", topic).save()
        return rows.count()
    finally:
        rows.unpersist()


def flights_as_json(spark: SparkSession, landing: Path, *, every: int = 1) -> DataFrame:
    """The bundled flights (every ``every``-th one) as Kafka would carry them from a producer: one JSON object per
    flight in ``value`` (numbers as JSON numbers, missing values left out), its key fields joined in ``key``."""
    staged = stage_demo_data(landing, ("flights",), flights_every=every)["flights"]
    flights = spark.read.option("header", True).option("nullValue", "NA").option("inferSchema", True).csv(str(staged))
    key = F.concat_ws("|", *[F.col(c).cast("string") for c in ("year", "month", "day", "carrier", "flight", "origin")])
    return flights.select(F.to_json(F.struct(*flights.columns)).alias("value"), key.alias("key"))


def _produce_flights(env: str, bootstrap: str, topic: str, landing: Path) -> None:
    from lakeforge.config import load_settings
    from lakeforge.spark import lakeforge_builder, with_kafka_connector

    spark = lakeforge_builder(with_kafka_connector(load_settings(env).spark), master="local[2]").getOrCreate()
    try:
        sent = produce(flights_as_json(spark, landing), bootstrap, topic)
        print(f"produced {sent} flights to topic {topic} on {bootstrap}", flush=True)
    finally:
        spark.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lakeforge.local_kafka", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--jar-cache", type=Path, default=Path(".cache/jars"))
    parser.add_argument("--workdir", type=Path, default=None, help="the broker's data (kept); default: temporary")
    parser.add_argument("--produce-flights", metavar="TOPIC", help="send the bundled flights to TOPIC as JSON "
                                                                   "messages, unless it holds messages already")
    parser.add_argument("--env", default="local", help="environment whose Spark settings the producer uses")
    parser.add_argument("--landing", type=Path, default=Path("data/landing"))
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="after --: a command to run while the broker serves; the broker stops when it ends")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with local_broker(args.jar_cache, args.workdir, port=args.port) as bootstrap:
        print(f"Kafka broker serving on {bootstrap}", flush=True)
        topic = args.produce_flights
        if topic and args.workdir is not None and any((args.workdir / "data").glob(f"{topic}-[0-9]*")):
            print(f"topic {topic} exists in {args.workdir}: the flights were produced before", flush=True)
        elif topic:
            _produce_flights(args.env, bootstrap, topic, args.landing)
        if command:
            return subprocess.run(command).returncode
        print("Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0


if __name__ == "__main__":
    sys.exit(main())
