"""Reading a ``kafka`` source with Spark's Structured Streaming Kafka connector.

Each message's value is a JSON object holding the source's declared columns, read as strings (cast later, row by
row, like a file's); a value that is not such an object (not JSON, an array, a bare string, an empty or null
value) keeps its text as the corrupt record and is quarantined. Every row carries its message's lineage into
bronze: ``_kafka_topic``, ``_kafka_partition``, ``_kafka_offset``, ``_kafka_timestamp`` and ``_kafka_key``, and
``_source_file`` names it as ``kafka://<topic>/<partition>/<offset>`` (which the quarantine keeps).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge.config import KafkaSpec, Settings, SourceSpec
from lakeforge.errors import ConfigError, KafkaSecretMissingError
from lakeforge.ingest.read import CORRUPT
from lakeforge.jars import kafka_connector_coordinates

LINEAGE = ("_kafka_topic", "_kafka_partition", "_kafka_offset", "_kafka_timestamp", "_kafka_key")
_LOGIN_MODULES = {"PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
                  "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
                  "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule"}


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def consumer_options(settings: Settings, source: SourceSpec) -> dict[str, str]:
    """The connector's options for ``source``: subscription, offsets and the consumer's security settings, with
    its secrets from the environment variables the source names (read when the settings were loaded).

    Raises ``KafkaSecretMissingError`` naming the variable when one is not set.
    """
    kafka: KafkaSpec = source.kafka
    secrets = settings.kafka_secrets.get(source.name, {})
    unset = sorted(env for key, env in kafka.secret_envs().items() if key not in secrets)
    if unset:
        raise KafkaSecretMissingError(f"source '{source.name}' (conf/sources/{source.name}.yaml) needs the "
                                      f"environment variable(s) {', '.join(unset)}: export them before starting the "
                                      "stream")
    options = {f"kafka.{k}": v for k, v in kafka.options.items()}
    options.update({
        "kafka.bootstrap.servers": kafka.bootstrap_servers,
        "startingOffsets": kafka.starting_offsets,
        "failOnDataLoss": str(kafka.fail_on_data_loss).lower(),
        "includeHeaders": "false",
        "kafka.security.protocol": kafka.security_protocol,
    })
    if kafka.topics:
        options["subscribe"] = ",".join(kafka.topics)
    else:
        options["subscribePattern"] = kafka.topic_pattern
    if kafka.max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(kafka.max_offsets_per_trigger)
    if kafka.sasl_mechanism:
        user, password = (secrets[k].get_secret_value() for k in ("sasl.username", "sasl.password"))
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
        options["kafka.sasl.jaas.config"] = (f"{_LOGIN_MODULES[kafka.sasl_mechanism]} required "
                                             f"username={_quoted(user)} password={_quoted(password)};")
    for key in ("ssl.truststore.password", "ssl.keystore.password", "ssl.key.password"):
        if key in secrets:
            options[f"kafka.{key}"] = secrets[key].get_secret_value()
    for key, value in (("ssl.truststore.location", kafka.ssl_truststore_location),
                       ("ssl.keystore.location", kafka.ssl_keystore_location)):
        if value:
            options[f"kafka.{key}"] = value
    return options


def parse_messages(messages: DataFrame, source: SourceSpec) -> DataFrame:
    """Kafka's rows (key, value, topic, partition, offset, timestamp) -> the declared columns as strings, the
    corrupt record's text (null for a good message) and the lineage columns."""
    schema = T.StructType([T.StructField(c, T.StringType()) for c in source.column_names]
                          + [T.StructField(CORRUPT, T.StringType())])
    text = F.col("value").cast("string")
    parsed = F.from_json(text, schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    rows = messages.select(text.alias("_value"), parsed.alias("_parsed"), "topic", "partition", "offset", "timestamp",
                           F.col("key").cast("string").alias("_key"))
    # A null or empty value parses to no struct at all: it is malformed too, shown as what it was.
    corrupt = F.coalesce(F.col(f"_parsed.{CORRUPT}"),
                         F.when(F.col("_parsed").isNull(), F.coalesce(F.col("_value"), F.lit("<null value>"))))
    where = F.concat(F.lit("kafka://"), F.col("topic"), F.lit("/"), F.col("partition").cast("string"), F.lit("/"),
                     F.col("offset").cast("string"))
    return rows.select(*[F.col(f"_parsed.`{c}`").alias(c) for c in source.column_names], corrupt.alias(CORRUPT),
                       where.alias("_source_file"), F.col("topic").alias("_kafka_topic"),
                       F.col("partition").alias("_kafka_partition"), F.col("offset").alias("_kafka_offset"),
                       F.col("timestamp").alias("_kafka_timestamp"), F.col("_key").alias("_kafka_key"))


def read_kafka_stream(spark: SparkSession, settings: Settings, source: SourceSpec,
                      max_offsets_per_trigger: int | None = None) -> DataFrame:
    """The streaming frame of ``source``'s messages, parsed (``parse_messages``)."""
    options = consumer_options(settings, source)
    if max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(max_offsets_per_trigger)
    try:
        messages = spark.readStream.format("kafka").options(**options).load()
    except Exception as exc:  # noqa: BLE001 - pyspark's AnalysisException or a Py4J error, by version
        if "kafka" not in str(exc).lower() or "find data source" not in str(exc).lower():
            raise
        raise ConfigError(f"source '{source.name}': Spark's Kafka connector is not on the class path; lakeforge "
                          f"adds {kafka_connector_coordinates()[0]} to spark.packages where the platform does not "
                          "provide jars (delta_jars: provided): on such a cluster, install that package") from None
    return parse_messages(messages, source)
