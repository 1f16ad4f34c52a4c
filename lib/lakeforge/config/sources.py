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


FILE_KINDS = ("csv", "json", "parquet")


class SourceSpec(_Frozen):
    """A declared source: where it comes from, its contract, its key, its quality rules."""

    name: str
    kind: Literal["csv", "json", "parquet", "jdbc", "delta", "stream_files"]
    path: str | None = Field(None, description="file, folder or table; relative to storage.landing unless absolute or a URI")
    file_format: Literal[FILE_KINDS] = Field("csv", description="format of the files a stream_files source watches")  # type: ignore[valid-type]
    options: dict[str, str] = Field(default_factory=dict)
    jdbc: JdbcSpec | None = None
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

    @field_validator("options", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        return {k: _to_str(v) for k, v in value.items()} if isinstance(value, Mapping) else value

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
        if self.kind != "jdbc" and not self.path:
            raise ValueError(f"a {self.kind} source needs a 'path'")
        return self

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)
