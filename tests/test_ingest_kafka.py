"""Kafka ingestion against a real broker (KRaft, Apache Kafka's own jars, started on 127.0.0.1 by the tests):
every key once in silver, every bad message in quarantine with its topic / partition / offset, and exactly once
across a killed and restarted stream driver."""

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import deltalake
import pytest
import yaml
from pyspark.sql import functions as F

from lakeforge.config import load_settings
from lakeforge.errors import ConfigError, KafkaSecretMissingError
from lakeforge.ingest.kafka import consumer_options
from lakeforge.ingest.stream import start_stream
from lakeforge.local_kafka import flights_as_json, local_broker, produce
from tests.conftest import ROOT, TEST_PII_KEY, settings_for
from tests.support.streams import kill_after_first_merge, silver_merges, stream_conf

KEY = ("year", "month", "day", "carrier", "flight", "origin")
BAD = [
    "not json at all",
    '[{"year": 2013}]',                       # JSON, but not an object
    "",                                        # an empty value
    '{"year": 2013, "month": 1, "day": 1',    # cut short
]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with local_broker(ROOT / ".cache" / "jars", tmp_path_factory.mktemp("kafka"), partitions=3) as bootstrap:
        yield bootstrap


def _with_broker(settings, bootstrap: str, topic: str):
    source = settings.sources["flights_kafka"]
    kafka = source.kafka.model_copy(update={"bootstrap_servers": bootstrap, "topics": (topic,)})
    return settings.model_copy(update={"sources": {**settings.sources,
                                                   "flights_kafka": source.model_copy(update={"kafka": kafka})}})


def _messages(spark, tmp_path: Path, every: int):
    """Flights as JSON, each 7th one sent twice (a producer's retry), the malformed values, a null value, and one
    message whose month breaks the contract."""
    flights = flights_as_json(spark, tmp_path / "landing", every=every)
    bad = spark.createDataFrame([(v, f"bad-{i}") for i, v in enumerate(BAD)], "value string, key string")
    tombstone = spark.createDataFrame([(None, "tombstone")], "value string, key string")
    off_contract = spark.createDataFrame([(json.dumps({"year": 2013, "month": 13, "day": 1, "sched_dep_time": 1,
                                                       "sched_arr_time": 2, "carrier": "ZZ", "flight": 1,
                                                       "origin": "EWR", "dest": "X", "distance": 1.0, "hour": 1}),
                                           "month-13")], "value string, key string")
    retried = flights.where(F.abs(F.hash("key")) % 7 == 0)
    return flights, flights.unionByName(retried).unionByName(bad).unionByName(tombstone).unionByName(off_contract)


def _topic(name: str) -> str:
    """A topic of this attempt only: a test run again (make test's rerun after a produce timed out) must not find
    the messages of the attempt before it."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_topic_to_silver_with_quarantine_by_offset(spark, broker, tmp_path):
    topic = _topic("flights-inprocess")
    settings = _with_broker(settings_for(tmp_path), broker, topic)
    flights, messages = _messages(spark, tmp_path, every=400)
    expected_keys = flights.count()
    sent = produce(messages, broker, topic)
    results = []
    query = start_stream(spark, settings, "flights_kafka", available_now=True, max_offsets_per_trigger=300,
                         on_batch=results.append)
    query.awaitTermination(300)
    assert query.exception() is None, query.exception()
    assert len(results) >= 2, "max_offsets_per_trigger should have split the topic into several micro-batches"

    lake = Path(settings.storage.root)
    silver = deltalake.DeltaTable(str(lake / "silver" / "flights_kafka")).to_pandas()
    assert len(silver) == expected_keys
    assert not silver.duplicated(list(KEY)).any()
    bronze = deltalake.DeltaTable(str(lake / "bronze" / "flights_kafka")).to_pandas()
    assert len(bronze) == sent  # every message landed once, as read
    assert not bronze.duplicated(["_kafka_partition", "_kafka_offset"]).any()
    assert set(bronze["_kafka_topic"]) == {topic}
    assert (bronze["_source_file"] == f"kafka://{topic}/" + bronze["_kafka_partition"].astype(str) + "/"
            + bronze["_kafka_offset"].astype(str)).all()

    quarantine = deltalake.DeltaTable(str(lake / "quarantine" / "flights_kafka")).to_pandas()
    by_key = bronze.set_index("_source_file")["_kafka_key"]
    contract = quarantine[quarantine["reason_kind"] == "contract"]
    assert sorted(by_key[contract["_source_file"]]) == sorted(
        [f"bad-{i}" for i in range(len(BAD))] + ["month-13", "tombstone"])
    malformed = contract[contract["reason"].str.startswith("malformed record")]
    assert len(malformed) == len(BAD) + 1  # the tombstone is malformed too
    assert "month" in contract.loc[by_key[contract["_source_file"]].values == "month-13", "reason"].iloc[0]
    # A retried message met its first copy either in the same micro-batch (quarantined as a duplicate) or in
    # silver (the MERGE matched it): never twice in silver either way.
    duplicates = quarantine[quarantine["reason_kind"] == "duplicate"]
    assert len(duplicates) <= sent - expected_keys - len(BAD) - 2
    assert all(r.quarantined >= 0 for r in results) and sum(r.rows_read for r in results) == sent


def test_secrets_come_from_the_environment(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    doc = yaml.safe_load((conf / "sources" / "flights_kafka.yaml").read_text())
    doc["kafka"].update(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                        sasl_username_env="LF_TEST_KAFKA_USER", sasl_password_env="LF_TEST_KAFKA_PASSWORD")
    (conf / "sources" / "flights_kafka.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.delenv("LF_TEST_KAFKA_PASSWORD", raising=False)
    monkeypatch.setenv("LF_TEST_KAFKA_USER", "lake")
    settings = load_settings("local", conf)
    with pytest.raises(KafkaSecretMissingError) as err:
        consumer_options(settings, settings.sources["flights_kafka"])
    assert str(err.value) == ("source 'flights_kafka' (conf/sources/flights_kafka.yaml) needs the environment "
                              "variable(s) LF_TEST_KAFKA_PASSWORD: export them before starting the stream")
    monkeypatch.setenv("LF_TEST_KAFKA_PASSWORD", 'p"w')
    settings = load_settings("local", conf)
    options = consumer_options(settings, settings.sources["flights_kafka"])
    assert options["kafka.security.protocol"] == "SASL_SSL"
    assert options["kafka.sasl.jaas.config"] == ('org.apache.kafka.common.security.scram.ScramLoginModule required '
                                                 'username="lake" password="p\\"w";')
    doc["kafka"]["sasl_password"] = "hunter2"
    (conf / "sources" / "flights_kafka.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="kafka.sasl_password: secrets must not be stored in YAML"):
        load_settings("local", conf)


def test_killed_stream_resumes_exactly_once(spark, broker, conf_copy, tmp_path):
    topic = _topic("flights-killed")
    path = conf_copy / "sources" / "flights_kafka.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["kafka"].update(bootstrap_servers=broker, topics=[topic])
    path.write_text(yaml.safe_dump(doc))
    stream_conf(conf_copy, tmp_path)

    flights, messages = _messages(spark, tmp_path, every=600)
    expected_keys = flights.count()
    sent = produce(messages, broker, topic)
    env = dict(os.environ, LAKEFORGE_PII_KEY=TEST_PII_KEY)
    cmd = [str(ROOT / "spark-submit.sh"), "stream", "--env", "local", "--conf-dir", str(conf_copy), "--source",
           "flights_kafka", "--master", "local[2]", "--max-offsets-per-trigger", "250"]
    silver = tmp_path / "lakehouse" / "silver" / "flights_kafka"
    batches = -(-sent // 250)

    kill_after_first_merge(cmd + ["--processing-time", "1 second"], env, silver, batches=batches)

    second = subprocess.run(cmd + ["--available-now"], env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]

    lake = tmp_path / "lakehouse"
    silver_rows = deltalake.DeltaTable(str(silver)).to_pandas()
    assert len(silver_rows) == expected_keys and not silver_rows.duplicated(list(KEY)).any()
    bronze = deltalake.DeltaTable(str(lake / "bronze" / "flights_kafka")).to_pandas()
    assert len(bronze) == sent and not bronze.duplicated(["_kafka_partition", "_kafka_offset"]).any()
    quarantine = deltalake.DeltaTable(str(lake / "quarantine" / "flights_kafka")).to_pandas()
    contract = quarantine[quarantine["reason_kind"] == "contract"]
    assert not contract.duplicated(["_source_file"]).any()
    assert sorted(bronze.set_index("_source_file")["_kafka_key"][contract["_source_file"]]) == sorted(
        [f"bad-{i}" for i in range(len(BAD))] + ["month-13", "tombstone"])
    assert silver_merges(silver) == batches  # one MERGE per micro-batch: the replayed one did not commit twice
