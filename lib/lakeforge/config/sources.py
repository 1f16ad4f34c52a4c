"""Source contracts: one file per source in ``conf/sources/``."""

from __future__ import annotations

from typing import Any, Literal, Mapping

from pydantic import Field, field_validator, model_validator

from lakeforge.config._base import SPARK_TYPES, _Frozen, _to_str


class ColumnSpec(_Frozen):
    """One column of a source contract."""

    name: str
    type: Literal[SPARK_TYPES]  # type: ignore[valid-type]
    nullable: bool = True
    check: str | None = Field(None, description="SQL boolean expression every non-null value must satisfy")
    format: str | None = Field(None, description="date and timestamp columns: the Spark datetime pattern the raw "
                                                 "values are written in (e.g. yyyy/MM/dd); a value that does not "
                                                 "match is quarantined. Default: ISO 8601")
    allow_date_only: bool = Field(False, description="timestamp columns without a format: accept a date without a "
                                                     "time as midnight in the session time zone (quarantined otherwise)")
    max_length: int | None = Field(None, ge=1, description="string columns: longest value accepted, in characters "
                                                           "(default: the source's max_string_length)")

    @model_validator(mode="after")
    def _format_for_dates(self) -> "ColumnSpec":
        if self.format is not None and self.type not in ("date", "timestamp"):
            raise ValueError(f"column '{self.name}': format applies to date and timestamp columns, not {self.type}")
        if self.allow_date_only and (self.type != "timestamp" or self.format is not None):
            raise ValueError(f"column '{self.name}': allow_date_only applies to timestamp columns without a format")
        if self.max_length is not None and self.type != "string":
            raise ValueError(f"column '{self.name}': max_length applies to string columns, not {self.type}")
        if self.format is not None and "'" in self.format:
            raise ValueError(f"column '{self.name}': format {self.format!r}: quote literal text with '' is not "
                             "supported; use the pattern letters and separators only")
        return self


class Expectation(_Frozen):
    """A data-quality rule measured on every batch; a breach fails the batch before silver is touched."""

    name: str
    kind: Literal["max_null_rate", "max_quarantine_rate", "max_duplicate_rate", "min_rows"]
    column: str | None = Field(None, description="the column, for max_null_rate")
    threshold: float = Field(ge=0)

    @model_validator(mode="after")
    def _column_when_needed(self) -> "Expectation":
        if (self.kind == "max_null_rate") != (self.column is not None):
            raise ValueError(f"expectation '{self.name}': 'column' is required for max_null_rate and only for it")
        return self


class JdbcSpec(_Frozen):
    """A table read over JDBC; the password comes from the environment variable ``password_env``."""

    url: str
    table: str
    user: str | None = None
    password_env: str | None = None
    driver: str = "org.postgresql.Driver"
    watermark_column: str | None = Field(None, description="read only rows above the last ingested value")
    fetchsize: int = Field(10_000, ge=1)


def _string_options(cls, value: Any) -> Any:
    """Reader options as YAML gives them (true, 1.5 ...) -> the strings Spark takes."""
    return {k: _to_str(v) for k, v in value.items()} if isinstance(value, Mapping) else value


class KafkaSpec(_Frozen):
    """A Kafka topic (or topics) read by Structured Streaming; each message's value is a JSON object with the
    source's declared columns. Secrets (SASL password, key and trust store passwords) come from the environment
    variables the ``*_env`` keys name, read at load time."""

    bootstrap_servers: str = Field(description="host:port[,host:port...]")
    topics: tuple[str, ...] = Field((), description="topics to subscribe to (or topic_pattern)")
    topic_pattern: str | None = Field(None, description="a Java regex of topics to subscribe to (or topics)")
    starting_offsets: str = Field("earliest", description="earliest, latest, or Spark's per-partition JSON; "
                                                          "only for the stream's first run (its checkpoint decides after)")
    max_offsets_per_trigger: int | None = Field(None, ge=1, description="messages per micro-batch, at most")
    fail_on_data_loss: bool = Field(True, description="stop when offsets the checkpoint expects were deleted by "
                                                      "retention (false: skip them, and lose those messages)")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username_env: str | None = None
    sasl_password_env: str | None = None
    ssl_truststore_location: str | None = None
    ssl_truststore_password_env: str | None = None
    ssl_keystore_location: str | None = None
    ssl_keystore_password_env: str | None = None
    ssl_key_password_env: str | None = None
    options: dict[str, str] = Field(default_factory=dict, description="more Kafka consumer settings, without the "
                                                                      "'kafka.' prefix (never secrets)")

    _stringify = field_validator("options", mode="before")(_string_options)

    @model_validator(mode="after")
    def _consistent(self) -> "KafkaSpec":
        if bool(self.topics) == bool(self.topic_pattern):
            raise ValueError("kafka: give exactly one of 'topics' (a list) and 'topic_pattern' (a regex)")
        sasl = self.security_protocol.startswith("SASL")
        if sasl and not (self.sasl_mechanism and self.sasl_username_env and self.sasl_password_env):
            raise ValueError(f"kafka: security_protocol {self.security_protocol} needs sasl_mechanism, "
                             "sasl_username_env and sasl_password_env (the names of environment variables)")
        if not sasl and (self.sasl_mechanism or self.sasl_username_env or self.sasl_password_env):
            raise ValueError(f"kafka: sasl_* settings need security_protocol SASL_PLAINTEXT or SASL_SSL, "
                             f"not {self.security_protocol}")
        managed = sorted(k for k in self.options if k.startswith(("kafka.", "bootstrap.servers", "security.protocol",
                                                                   "sasl.", "group.id", "subscribe")))
        if managed:
            raise ValueError(f"kafka.options: {managed} are set by lakeforge or not allowed; use the kafka section's "
                             "own keys (bootstrap_servers, topics, security_protocol, sasl_*) and no 'kafka.' prefix")
        return self

    def secret_envs(self) -> dict[str, str]:
        """Kafka consumer setting -> the environment variable holding its value."""
        pairs = {"sasl.password": self.sasl_password_env, "sasl.username": self.sasl_username_env,
                 "ssl.truststore.password": self.ssl_truststore_password_env,
                 "ssl.keystore.password": self.ssl_keystore_password_env,
                 "ssl.key.password": self.ssl_key_password_env}
        return {k: v for k, v in pairs.items() if v}


FILE_KINDS = ("csv", "json", "parquet")
STREAM_KINDS = ("stream_files", "kafka")


class SourceSpec(_Frozen):
    """A declared source: where it comes from, its contract, its key, its quality rules."""

    name: str
    kind: Literal["csv", "json", "parquet", "jdbc", "delta", "stream_files", "kafka"]
    path: str | None = Field(None, description="file, folder or table; relative to storage.landing unless absolute or a URI")
    file_format: Literal[FILE_KINDS] = Field("csv", description="format of the files a stream_files source watches")  # type: ignore[valid-type]
    options: dict[str, str] = Field(default_factory=dict)
    jdbc: JdbcSpec | None = None
    kafka: KafkaSpec | None = None
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    event_time: str | None = Field(None, description="latest event wins among rows with the same key")
    pii: tuple[str, ...] = Field((), description="columns replaced in silver by HMAC-SHA256 of their value")
    partition_by: tuple[str, ...] = ()
    zorder_by: tuple[str, ...] = Field((), description="columns OPTIMIZE clusters silver by")
    expectations: tuple[Expectation, ...] = ()
    schema_evolution: Literal["strict", "additive"] = "strict"
    encoding: str = Field("UTF-8", description="csv and json files: their character encoding; bytes that are not "
                                               "valid in it quarantine the row (never replaced silently)")
    max_string_length: int = Field(1 << 20, ge=1, description="longest string value accepted, in characters, where a "
                                                              "column declares no max_length (a longer one is "
                                                              "quarantined)")

    _stringify = field_validator("options", mode="before")(_string_options)

    @model_validator(mode="after")
    def _keys_are_columns(self) -> "SourceSpec":
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"column(s) declared twice: {', '.join(dupes)}")
        missing = [k for k in self.primary_key if k not in names]
        if not self.primary_key or missing:
            raise ValueError(f"primary_key must name declared columns; not declared: {missing or '(empty key)'}")
        if self.event_time is not None and self.event_time not in names:
            raise ValueError(f"event_time '{self.event_time}' is not a declared column")
        for field in ("pii", "partition_by", "zorder_by"):
            unknown = [c for c in getattr(self, field) if c not in names]
            if unknown:
                raise ValueError(f"{field} names undeclared column(s) {unknown}")
        unknown = [e.column for e in self.expectations if e.column is not None and e.column not in names]
        if unknown:
            raise ValueError(f"expectations name undeclared column(s) {unknown}")
        if (self.kind == "jdbc") != (self.jdbc is not None):
            raise ValueError("a jdbc source needs a 'jdbc' section, and only a jdbc source may have one")
        if (self.kind == "kafka") != (self.kafka is not None):
            raise ValueError("a kafka source needs a 'kafka' section, and only a kafka source may have one")
        if self.kind not in ("jdbc", "kafka") and not self.path:
            raise ValueError(f"a {self.kind} source needs a 'path'")
        return self

    @property
    def streaming(self) -> bool:
        """Read by a Structured Streaming job (``stream``), not by ``ingest``."""
        return self.kind in STREAM_KINDS

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)
