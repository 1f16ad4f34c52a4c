import json
import stat
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakeforge.config import SparkSettings
from lakeforge.jars import (JarResolutionError, _artifact, _key, delta_artifact, delta_coordinates, manifest_path, resolve_jars,
                            without_spark_jars)
from lakeforge.spark import DELTA_EXTENSION, JavaNotFoundError, check_java, configure_spark_with_lakeforge
from tests.conftest import ROOT


def _fake_java(tmp_path, version_line: str) -> str:
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return str(java)


def test_old_java_fails_early_with_the_fix(tmp_path):
    java = _fake_java(tmp_path, 'openjdk version "11.0.2" 2019-01-15')
    with pytest.raises(JavaNotFoundError) as err:
        check_java(java)
    assert str(err.value) == (f"Spark 4 needs Java 17 or newer, found Java 11 ({java}). "
                              "Install openjdk-17 and point JAVA_HOME at it.")


def test_java_8_version_scheme_is_understood(tmp_path):
    with pytest.raises(JavaNotFoundError, match="found Java 8"):
        check_java(_fake_java(tmp_path, 'java version "1.8.0_292"'))


def test_current_java_passes(tmp_path):
    assert check_java(_fake_java(tmp_path, 'openjdk version "17.0.15" 2025-04-15')) == 17


def test_missing_java_says_how_to_install(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(JavaNotFoundError, match=r"no `java` was found .* apt-get install openjdk-17-jre-headless"):
        check_java()


def test_builder_gets_delta_and_the_running_python_for_local_masters(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    builder = configure_spark_with_lakeforge(SparkSession.Builder(), SparkSettings(master="local[2]", conf={"a.b": "1"}),
                                             delta_jars=["/x/delta.jar"], extra_conf={"a.b": "2"})
    options = builder._options
    assert options["spark.sql.extensions"] == DELTA_EXTENSION
    assert options["spark.jars"] == "/x/delta.jar"
    assert options["spark.master"] == "local[2]"
    assert options["a.b"] == "2"
    assert options["spark.pyspark.python"] == sys.executable
    import os
    assert os.environ["PYSPARK_PYTHON"] == sys.executable


def test_cluster_masters_keep_their_python(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    builder = configure_spark_with_lakeforge(SparkSession.Builder(), SparkSettings(master="yarn"))
    assert "spark.pyspark.python" not in builder._options
    import os
    assert "PYSPARK_PYTHON" not in os.environ


def test_builder_is_required():
    with pytest.raises(TypeError, match="expected a SparkSession.Builder, got str"):
        configure_spark_with_lakeforge("local", SparkSettings())


def test_delta_coordinates_follow_the_installed_wheels():
    from importlib.metadata import version

    import pyspark
    if pyspark.__version__.startswith("3."):  # the Spark 3.5 line (constraints-spark35.txt): Scala 2.12
        assert delta_coordinates() == (f"io.delta:delta-spark_2.12:{version('delta-spark')}",)
    else:
        minor = ".".join(pyspark.__version__.split(".")[:2])
        assert delta_coordinates() == (f"io.delta:delta-spark_{minor}_2.13:{version('delta-spark')}",)


def test_delta_artifact_carries_the_spark_line_from_delta_4_1():
    assert delta_artifact("4.4.0", "4.2.0", "2.13") == "delta-spark_4.2_2.13"
    assert delta_artifact("4.1.0", "4.0.1", "2.13") == "delta-spark_4.0_2.13"
    assert delta_artifact("4.0.1", "4.0.1", "2.13") == "delta-spark_2.13"
    assert delta_artifact("3.3.2", "3.5.9", "2.12") == "delta-spark_2.12"


@pytest.mark.parametrize("manifest", ["manifest-{key}.json", "manifest.json"])  # per coordinates, or legacy
def test_cached_jars_are_reused_without_resolving(tmp_path, monkeypatch, manifest):
    jar = tmp_path / "ivy" / "k" / "jars" / "x.jar"
    jar.parent.mkdir(parents=True)
    jar.write_bytes(b"jar")
    (tmp_path / manifest.format(key=_key(["g:a:1"]))).write_text(json.dumps(
        {"coordinates": ["g:a:1"], "jars": ["ivy/k/jars/x.jar"], "method": "ivy"}))
    monkeypatch.setattr("lakeforge.jars._resolve_with_ivy", lambda *a: pytest.fail("must not resolve"))
    resolved = resolve_jars(tmp_path, ["g:a:1"])
    assert resolved.jars == (jar,) and resolved.method == "ivy"


def test_maven_is_the_fallback_when_ivy_fails(tmp_path, monkeypatch):
    def ivy_fails(workdir, coords):
        raise JarResolutionError("Ivy says no")

    def maven(workdir, coords):
        (workdir / "jars").mkdir(parents=True)
        jar = workdir / "jars" / "a-1.jar"
        jar.write_bytes(b"jar")
        return [jar]

    other_line = '{"coordinates": ["g:b:2"], "jars": ["ivy/k/jars/b.jar"], "method": "ivy"}'
    (tmp_path / "manifest.json").write_text(other_line)
    monkeypatch.setattr("lakeforge.jars._resolve_with_ivy", ivy_fails)
    monkeypatch.setattr("lakeforge.jars._resolve_with_maven", maven)
    resolved = resolve_jars(tmp_path, ["g:a:1"])
    assert resolved.method == "maven"
    assert json.loads(manifest_path(tmp_path, ["g:a:1"]).read_text())["method"] == "maven"
    assert (tmp_path / "manifest.json").read_text() == other_line  # another line's manifest is left alone


def test_unresolvable_coordinates_say_what_failed(tmp_path):
    with pytest.raises(JarResolutionError) as err:
        resolve_jars(tmp_path, ["io.lakeforge.nonexistent:nothing_2.13:0.0.1"], methods=("ivy",))
    message = str(err.value)
    assert message.startswith(f"Could not resolve io.lakeforge.nonexistent:nothing_2.13:0.0.1 into {tmp_path}.")
    assert "[ivy] Ivy (spark-submit --packages) failed" in message
    assert "unresolved dependency: io.lakeforge.nonexistent#nothing_2.13;0.0.1: not found" in message


def test_jars_spark_ships_are_not_added_again(tmp_path):
    """A connector's dependencies name Hadoop's client, lz4, slf4j ...: Spark's own copies serve, and a second
    copy at another version stays off the class path, whether Ivy (organisation_artifact-version) or Maven
    (artifact-version) named the file."""
    import pyspark

    spark_jars = {p.name for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    hadoop = next(n for n in spark_jars if n.startswith("hadoop-client-api-"))
    names = ["org.apache.hadoop_hadoop-client-api-0.0.1.jar", "hadoop-client-runtime-0.0.1.jar", "joda-time_joda-time-1.0.jar",
             "org.apache.kafka_kafka-clients-3.9.2.jar", "org.apache.spark_spark-sql-kafka-0-10_2.13-9.9.9.jar",
             "kafka-clients-3.9.2.jar", "io.delta_delta-spark_4.2_2.13-4.4.0.jar", "commons-pool2-2.13.1.jar"]
    kept = {j.name for j in without_spark_jars([tmp_path / n for n in names])}
    assert hadoop and kept == {"org.apache.kafka_kafka-clients-3.9.2.jar", "org.apache.spark_spark-sql-kafka-0-10_2.13-9.9.9.jar",
                               "kafka-clients-3.9.2.jar", "io.delta_delta-spark_4.2_2.13-4.4.0.jar", "commons-pool2-2.13.1.jar"}
    assert _artifact(Path("spark-core_2.13-4.2.0.jar")) == "spark-core_2.13"
    assert _artifact(Path("org.scala-lang.modules_scala-parallel-collections_2.13-1.2.0.jar")) == "scala-parallel-collections_2.13"


def test_only_a_kafka_stream_brings_the_connector_for_this_spark():
    """A stream job on a kafka source runs with Spark's Kafka connector for the installed pyspark; no other job
    resolves or ships it, nor an environment whose platform provides jars."""
    import pyspark

    from lakeforge.config import load_settings
    from lakeforge.jars import kafka_connector_coordinates
    from lakeforge.spark import job_spark_settings

    connector = kafka_connector_coordinates()
    scala = "2.13" if int(pyspark.__version__.split(".")[0]) >= 4 else "2.12"
    assert connector == (f"org.apache.spark:spark-sql-kafka-0-10_{scala}:{pyspark.__version__}",)
    local = load_settings("local", ROOT / "conf")
    assert job_spark_settings(local, "stream", "flights_kafka").packages == local.spark.packages + connector
    for job, source in (("stream", "flights_stream"), ("ingest", "flights_kafka"), ("pipeline", None)):
        assert job_spark_settings(local, job, source) == local.spark
    databricks = load_settings("databricks", ROOT / "conf")
    assert job_spark_settings(databricks, "stream", "flights_kafka") == databricks.spark
