"""The configuration checked against the real schemas before any expensive Spark job.

Every column the configuration names (joins, derived expressions, features, label, split, weights, entity key,
monitoring's labels table, label and window column) is looked up in the schema it must be in: the silver tables
(the tables themselves once ingested, their contracts before), then the gold schema, derived by Spark's analyser
from empty frames with those schemas: no job runs and no row is read. Every problem names the YAML file that set
the key, the key path, the column, what was found and what was expected; all of them are reported at once.

``./spark-submit.sh check --env ENV [--conf-dir DIR]`` runs exactly these checks (exit 0, or 2 with the list);
``run_pipeline`` and the train, score and monitor jobs run them before their first job.
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.utils import AnalysisException

from lakeforge.config import ConfigError, Settings
from lakeforge.errors import InputError
from lakeforge.features import apply_join
from lakeforge.ingest.merge import SILVER_LINEAGE, silver_type
from lakeforge.ingest.read import type_family
from lakeforge.monitor import labels_table, perf_label, window_column
from lakeforge.paths import entity_key, silver_table
from lakeforge.tables import Table, delta_version

log = logging.getLogger(__name__)
__all__ = ["CheckResult", "check_configuration"]

NUMBER = "a number (int, bigint, float, double, decimal) or boolean"
NUMBERS = ("numeric", "boolean")
_TYPES = {"string": T.StringType(), "int": T.IntegerType(), "bigint": T.LongType(), "double": T.DoubleType(),
          "float": T.FloatType(), "boolean": T.BooleanType(), "date": T.DateType(), "timestamp": T.TimestampType()}


@dataclass(frozen=True)
class CheckResult:
    """What was checked: where each silver schema came from, the gold schema and the labels table."""

    silver: dict[str, str]  # source -> "table <path> (version N)" or "contract (not ingested yet)"
    gold_columns: dict[str, str]  # name -> Spark type
    labels: str
    window_column: str | None
    checked: int  # column references checked

    def lines(self) -> list[str]:
        return [f"silver {name}: {where}" for name, where in self.silver.items()] + [
            f"gold: {len(self.gold_columns)} columns", f"labels: {self.labels}",
            f"performance windows: {self.window_column or 'none (overall figures only)'}",
            f"{self.checked} column references checked: all found with the expected types"]


@dataclass
class _Problems:
    settings: Settings
    found: list[str] = field(default_factory=list)
    checked: int = 0

    def where(self, key_path: str) -> str:
        origin = self.settings.origin(key_path)
        shown_path = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", key_path)  # features.numeric.3 -> features.numeric[3]
        if origin is None:
            return f"{shown_path} (lakeforge's default)"
        root = Path(self.settings.project_root)
        shown = Path(origin).relative_to(root) if Path(origin).is_relative_to(root) else Path(origin)
        return f"{shown}: {shown_path}"

    def add(self, key_path: str, text: str) -> None:
        self.found.append(f"{self.where(key_path)}: {text}")

    def column(self, key_path: str, column: str | None, schema: T.StructType, table: str,
               expected: tuple[str, ...] | None = None, expected_text: str = "", fix: str = "",
               missing_fix: str = "") -> bool:
        """Check that ``column`` is in ``schema`` (and of one of the ``expected`` type families); ``fix`` is said
        of a wrong type, ``missing_fix`` of a missing column."""
        if column is None:
            return True
        self.checked += 1
        names = schema.fieldNames()
        if column not in names:
            close = difflib.get_close_matches(column, names, n=1)
            shown = ", ".join(names[:40]) + (f" ... ({len(names)} in all)" if len(names) > 40 else "")
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.add(key_path, f"column '{column}' is not in {table}{hint} (its columns: {shown})"
                               f"{missing_fix and '; ' + missing_fix}")
            return False
        dtype = schema[column].dataType
        if expected is not None and type_family(dtype) not in expected:
            self.add(key_path, f"column '{column}' of {table} is {dtype.simpleString()}; expected {expected_text}"
                               f"{fix and '; ' + fix}")
            return False
        return True


def _contract_frame(spark: SparkSession, settings: Settings, name: str) -> DataFrame:
    source = settings.sources[name]
    schema = T.StructType([T.StructField(c.name, _TYPES[silver_type(source, c.name, c.type)]) for c in source.columns]
                          + [T.StructField(c, _TYPES[t]) for c, t in SILVER_LINEAGE])  # what every silver row carries
    return spark.createDataFrame([], schema)


def _silver_frames(spark: SparkSession, settings: Settings) -> tuple[dict[str, DataFrame], dict[str, str]]:
    features = settings.features
    frames, origins = {}, {}
    for name in dict.fromkeys([features.base, *(j.source for j in features.joins)]):
        path = silver_table(settings, name)
        version = delta_version(spark, path)
        if version is None:
            frames[name], origins[name] = _contract_frame(spark, settings, name), "its contract (not ingested yet)"
        else:
            frames[name] = path.read(spark, version)
            origins[name] = f"table {path} (version {version})"
    return frames, origins


def _spark_message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"(\s*SQLSTATE: \w+)?\.?(;\s*line \d+ pos \d+)?;?$", "", text)


@contextmanager
def _quiet_analysis_errors() -> Iterator[None]:
    """PySpark logs every analysis error it raises, with the whole plan, before the caller can catch it."""
    logger = logging.getLogger("SQLQueryContextLogger")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _gold_schema(problems: _Problems, settings: Settings, silver: dict[str, DataFrame],
                 origins: dict[str, str]) -> T.StructType:
    """The gold schema the declared join and derived columns give over ``silver`` (analysis only)."""
    features = settings.features
    base_spec = settings.sources[features.base]
    frame = silver[features.base].select(*[F.col(f"`{c}`") for c in base_spec.column_names])
    for i, join in enumerate(features.joins):
        right_schema, left_keys = silver[join.source].schema, join.left_keys or join.keys
        table = f"silver table '{join.source}' ({origins[join.source]})"
        ok = all([problems.column(f"features.joins.{i}.left_keys", k, frame.schema,
                                  f"the base rows as joined so far ('{features.base}' and the joins before)")
                  for k in left_keys])
        ok &= all([problems.column(f"features.joins.{i}.keys", k, right_schema, table) for k in join.keys])
        ok &= all([problems.column(f"features.joins.{i}.select.{src}", src, right_schema, table) for src in join.select])
        if join.as_of is not None:
            as_of = join.as_of
            ok &= problems.column(f"features.joins.{i}.as_of.source_time", as_of.source_time or
                                  settings.sources[join.source].event_time, right_schema, table)
            if as_of.tie_break is not None:
                ok &= problems.column(f"features.joins.{i}.as_of.tie_break", as_of.tie_break, right_schema, table)
            try:
                with _quiet_analysis_errors():
                    frame.select(F.expr(as_of.time)).schema  # noqa: B018 - analysis only
            except (AnalysisException, PySparkException) as exc:
                problems.add(f"features.joins.{i}.as_of.time", f"{as_of.time!r} does not resolve over the base rows "
                                                               f"as joined so far: {_spark_message(exc)}")
                ok = False
        clash = [dst for dst in join.select.values() if dst in frame.columns and dst not in left_keys]
        if clash:
            problems.add(f"features.joins.{i}.select", f"output column(s) {clash} already exist before this join; "
                                                         "give them other names")
            ok = False
        if ok:
            frame = apply_join(frame, silver[join.source], join, settings.sources[join.source].event_time)
    for name, expression in features.derived.items():
        try:
            with _quiet_analysis_errors():
                candidate = frame.withColumn(name, F.expr(expression))
                candidate.schema  # noqa: B018 - analysis only: resolves every column the expression names
        except (AnalysisException, PySparkException) as exc:
            problems.add(f"features.derived.{name}", f"{expression!r} does not resolve over the columns before it: "
                                                      f"{_spark_message(exc)}")
            continue
        frame = candidate
    return frame.schema


def _check_test_from(problems: _Problems, settings: Settings, gold: T.StructType) -> None:
    split = settings.features.split
    dtype = gold[split.column].dataType
    try:
        if isinstance(dtype, T.DateType):
            dt.date.fromisoformat(split.test_from)
        elif isinstance(dtype, (T.TimestampType, T.TimestampNTZType)):
            dt.datetime.fromisoformat(split.test_from)
        else:
            float(split.test_from)
    except ValueError:
        problems.add("features.split.test_from", f"{split.test_from!r} is not a value of column '{split.column}' "
                                                 f"({dtype.simpleString()}); give one, e.g. "
                                                 f"{'2024-01-01' if type_family(dtype) == 'temporal' else '2020'}")


def _check_gold(problems: _Problems, settings: Settings, gold: T.StructType) -> None:
    features, model = settings.features, settings.model
    table = "the gold table (the declared joins and derived columns)"
    declare = "declare it under features.derived or a join's select"
    for i, column in enumerate(features.categorical):
        problems.column(f"features.categorical.{i}", column, gold, table, ("string", *NUMBERS, "temporal"),
                        "a string, number, boolean, date or timestamp", missing_fix=declare)
    for i, column in enumerate(features.numeric):
        problems.column(f"features.numeric.{i}", column, gold, table, NUMBERS, NUMBER,
                        "list it under features.categorical, or cast it in features.derived", declare)
    problems.column("features.label", features.label, gold, table, NUMBERS, NUMBER,
                    "derive a numeric label in features.derived (e.g. CAST(x > 15 AS INT))", declare)
    for k in entity_key(settings):
        problems.column(f"sources.{features.base}.primary_key", k, gold, table)
    split = features.split
    if split.kind == "time" and problems.column("features.split.column", split.column, gold, table,
                                                ("temporal", "numeric"), "a date, timestamp or number",
                                                missing_fix=declare):
        _check_test_from(problems, settings, gold)
    problems.column("model.weight_col", model.weight_col, gold, table, NUMBERS, NUMBER, missing_fix=declare)


def _check_monitoring(problems: _Problems, spark: SparkSession, settings: Settings, gold: T.StructType) -> tuple[str, str | None]:
    cfg = settings.monitor
    unknown = sorted(set(cfg.feature_thresholds) - set(settings.features.feature_columns))
    if unknown:
        problems.add("monitor.feature_thresholds", f"{unknown} are not features (features.categorical and "
                                                   f"features.numeric: {list(settings.features.feature_columns)})")
    path = labels_table(settings)
    if cfg.performance.labels_table is None:
        schema, described = gold, "the gold table"
    elif delta_version(spark, path) is None:
        where = f"named {path}" if Table.of(path).by_name else f"at {path}"
        problems.add("monitor.performance.labels_table", f"no Delta table {where}; point it at a table with the "
                                                         "entity key, the label and the window column, or remove it "
                                                         "to use the gold table")
        return path, None
    else:
        schema, described = Table.of(path).read(spark).schema, f"labels table {path}"
    for k in entity_key(settings):
        problems.column("monitor.performance.labels_table", k, schema, described,
                        missing_fix="the labels table must carry the entity key")
    if cfg.performance.labels_table is not None or cfg.performance.label is not None:  # else: features.label, checked
        problems.column("monitor.performance.label", perf_label(settings), schema, described, NUMBERS, NUMBER)
    column = window_column(settings)
    if cfg.performance.window_column is not None:
        problems.column("monitor.performance.window_column", column, schema, described, ("temporal",),
                        "a date or timestamp column", "or set monitor.performance.window: none (overall figures only)",
                        "or set monitor.performance.window: none (overall figures only)")
    elif column is not None and (column not in schema.fieldNames() or type_family(schema[column].dataType) != "temporal"):
        column = None  # the split column, when it is not a date or timestamp: no windows
    return described, column


def check_configuration(spark: SparkSession, settings: Settings) -> CheckResult:
    """Check every column the configuration names against the real schemas; raise ``ConfigError`` listing every
    problem (file, key path, column, found, expected). Runs no Spark job."""
    problems = _Problems(settings)
    if settings.model.framework == "xgboost":
        from lakeforge.train.checks import validate_params

        try:
            validate_params(settings.model.params)
        except InputError as exc:
            problems.found.append(f"{problems.where('model.params')}: {exc}")
    for key, text in settings.future_joins().items():
        problems.add(key, text)
    silver, origins = _silver_frames(spark, settings)
    gold = _gold_schema(problems, settings, silver, origins)
    _check_gold(problems, settings, gold)
    labels, column = _check_monitoring(problems, spark, settings, gold)
    if problems.found:
        raise ConfigError(f"the configuration of environment '{settings.env}' names what its tables do not have "
                          f"({len(problems.found)} problem(s)):\n" + "\n".join(f"  {p}" for p in problems.found))
    result = CheckResult(origins, {f.name: f.dataType.simpleString() for f in gold.fields}, labels, column,
                         problems.checked)
    log.info("configuration of %s checked against the schemas: %d column references, gold has %d columns",
             settings.env, problems.checked, len(gold.fields))
    return result
