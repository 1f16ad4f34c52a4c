"""Typed, frozen configuration loaded once at the edge from ``conf/``.

``conf/base.yaml`` is deep-merged with ``conf/<env>.yaml``; every file in ``conf/sources/`` declares one
source. The merged document is validated with pydantic; any error names the file, the key path and
what was expected. Secrets never come from YAML: a key that looks like one is refused, and settings name
the environment variable to read instead (read here, at load time, never deeper in the code).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
import os

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

SPARK_TYPES = ("string", "int", "bigint", "double", "float", "boolean", "date", "timestamp")
_SECRET_KEY = re.compile(r"(password|passwd|secret|token|api_key|apikey|private_key)$", re.IGNORECASE)


class ConfigError(ValueError):
    """Configuration that cannot be loaded; the message names file, key path and the fix."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Frozen):
    """One column of a source contract."""

    name: str
    type: Literal[SPARK_TYPES]  # type: ignore[valid-type]
    nullable: bool = True
    check: str | None = Field(None, description="SQL boolean expression every non-null value must satisfy")


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


class StorageSettings(_Frozen):
    root: str = Field(description="lakehouse root; tables live at <root>/<layer>/<name>")
    landing: str = Field(description="where raw files land; source paths are relative to it")

    def table_path(self, layer: str, name: str) -> str:
        return f"{self.root.rstrip('/')}/{layer}/{name}"

    def landing_path(self, relative: str) -> str:
        if "://" in relative or relative.startswith("/"):
            return relative
        return f"{self.landing.rstrip('/')}/{relative}"


class SparkSettings(_Frozen):
    master: str | None = Field(None, description="only used when not launched by spark-submit")
    app_name: str = "lakeforge"
    delta_jars: Literal["resolve", "provided"] = Field(
        "resolve", description="resolve: fetch Delta's jars into jar_cache; provided: the platform ships Delta")
    jar_cache: str = ".cache/jars"
    packages: tuple[str, ...] = Field((), description="extra Maven coordinates (JDBC drivers ...) resolved with Delta's")
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("conf", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        return {k: _to_str(v) for k, v in value.items()} if isinstance(value, Mapping) else value


class MlflowSettings(_Frozen):
    tracking_uri: str
    registry_uri: str | None = None
    artifact_root: str | None = Field(None, description="artifact location of a newly created experiment")
    experiment: str


class JoinSpec(_Frozen):
    source: str
    keys: tuple[str, ...] = Field(description="join keys; must be the joined source's primary key")
    left_keys: tuple[str, ...] | None = Field(None, description="the base's columns matching keys (default: same names)")

    @model_validator(mode="after")
    def _same_arity(self) -> "JoinSpec":
        if self.left_keys is not None and len(self.left_keys) != len(self.keys):
            raise ValueError(f"join with '{self.source}': left_keys {list(self.left_keys)} and keys {list(self.keys)} "
                             "must pair up one to one")
        return self
    select: dict[str, str] = Field(description="source column -> output column")


class SplitSettings(_Frozen):
    kind: Literal["time"] = "time"
    column: str
    test_from: str = Field(description="rows with column >= test_from form the holdout")


class FeatureSettings(_Frozen):
    table: str
    base: str = Field(description="source whose rows are the entities to predict")
    joins: tuple[JoinSpec, ...] = ()
    derived: dict[str, str] = Field(default_factory=dict, description="output column -> SQL expression")
    label: str
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    split: SplitSettings

    @model_validator(mode="after")
    def _features_distinct(self) -> "FeatureSettings":
        both = sorted(set(self.categorical) & set(self.numeric))
        if both:
            raise ValueError(f"column(s) both categorical and numeric: {', '.join(both)}")
        if self.label in self.categorical or self.label in self.numeric:
            raise ValueError(f"the label '{self.label}' must not be a feature")
        return self

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return self.categorical + self.numeric


SPACE_KINDS = {"choice": None, "uniform": 2, "loguniform": 2, "quniform": 3, "randint": 2}


class SearchSettings(_Frozen):
    """A Hyperopt search over booster parameters (TPE)."""

    strategy: Literal["none", "parallel", "distributed"] = Field(
        "none", description="parallel: SparkTrials, single-node xgboost per trial on a sample; "
                            "distributed: plain Trials, each trial an xgboost.spark fit")
    max_evals: int = Field(16, ge=1)
    parallelism: int = Field(2, ge=1, description="parallel strategy: trials at once")
    timeout_seconds: int | None = Field(None, ge=1)
    no_progress_evals: int | None = Field(None, ge=1, description="stop after this many trials without improvement")
    sample_rows: int = Field(200_000, ge=100, description="parallel strategy: training rows each trial sees")
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="latest share of the training split used to score trials")
    space: dict[str, dict[str, list[float | int | str]]] = Field(default_factory=dict)

    @field_validator("space")
    @classmethod
    def _space_shape(cls, space: dict) -> dict:
        for name, spec in space.items():
            if len(spec) != 1 or next(iter(spec)) not in SPACE_KINDS:
                raise ValueError(f"space.{name}: give exactly one of {', '.join(SPACE_KINDS)}, e.g. {{uniform: [0.5, 1.0]}}")
            kind, args = next(iter(spec.items()))
            arity = SPACE_KINDS[kind]
            if (arity is None and not args) or (arity is not None and len(args) != arity):
                raise ValueError(f"space.{name}.{kind}: expected {arity or 'a non-empty list of'} values, got {args}")
            if kind == "loguniform" and min(args) <= 0:
                raise ValueError(f"space.{name}.loguniform: bounds must be positive, got {args}")
        return space


class ModelSettings(_Frozen):
    registered_name: str
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    num_workers: int = Field(1, ge=1)
    device: Literal["cpu", "cuda"] = "cpu"
    fallback_to_cpu: bool = Field(False, description="train on CPU when device is cuda and no GPU is visible")
    min_auc: float = Field(0.5, ge=0.0, le=1.0, description="gate: a model below this is never champion")
    min_improvement: float = Field(0.0, ge=0.0, description="gate: AUC margin over the champion on the same holdout")
    seed: int = 42
    search: SearchSettings = SearchSettings()


class ScoreSettings(_Frozen):
    table: str
    threshold: float = Field(0.5, gt=0.0, lt=1.0)


class Threshold(_Frozen):
    """Warn and alert levels of one metric; a level left out is not checked."""

    warn: float | None = None
    alert: float | None = None


# Metrics where a low value is bad (status when value < level); every other thresholded metric is bad when high
# (status when value >= level).
LOWER_IS_WORSE = frozenset({"chi2_p_value", "auc"})
FEATURE_METRICS = ("psi", "ks", "chi2_p_value", "null_rate_delta")


class MonitorThresholds(_Frozen):
    """Per-metric levels. Feature metrics: psi, ks (numeric), chi2_p_value (categorical), null_rate_delta
    (absolute change of the null rate). Predictions: prediction_psi, prediction_ks. Realised performance on
    labelled rows: auc (minimum), calibration_error (maximum expected calibration error)."""

    psi: Threshold = Threshold(warn=0.1, alert=0.25)
    ks: Threshold = Threshold(warn=0.1, alert=0.2)
    chi2_p_value: Threshold = Threshold(warn=0.01, alert=0.001)
    null_rate_delta: Threshold = Threshold(warn=0.02, alert=0.05)
    prediction_psi: Threshold = Threshold(warn=0.1, alert=0.25)
    prediction_ks: Threshold = Threshold(warn=0.1, alert=0.2)
    auc: Threshold = Threshold(warn=0.65, alert=0.6)
    calibration_error: Threshold = Threshold(warn=0.05, alert=0.1)

    @model_validator(mode="after")
    def _ordered(self) -> "MonitorThresholds":
        for name in type(self).model_fields:
            _check_levels(name, getattr(self, name))
        return self


def _check_levels(metric: str, level: Threshold) -> None:
    if metric in ("chi2_p_value", "auc", "calibration_error"):
        for value in (level.warn, level.alert):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{metric}: levels must lie in [0, 1], got {value}")
    if level.warn is None or level.alert is None:
        return
    if metric in LOWER_IS_WORSE and level.warn < level.alert:
        raise ValueError(f"{metric}: low values are bad, so warn ({level.warn}) must be >= alert ({level.alert})")
    if metric not in LOWER_IS_WORSE and level.warn > level.alert:
        raise ValueError(f"{metric}: high values are bad, so warn ({level.warn}) must be <= alert ({level.alert})")


class PerformanceSettings(_Frozen):
    """Realised performance once labels arrive: the scored rows joined by the entity key to the labels table."""

    labels_table: str | None = Field(None, description="Delta table path with the key, label and window column "
                                                       "(default: the gold features table, latest version)")
    label: str | None = Field(None, description="label column of labels_table (default: features.label)")
    window_column: str = Field("flight_date", description="date or timestamp column of labels_table")
    window: Literal["day", "week", "month", "quarter", "year"] = "month"
    min_rows: int = Field(100, ge=1, description="a window with fewer labelled rows is reported, not judged")
    calibration_bins: int = Field(10, ge=2, description="equal-width probability bins of the calibration error")


class MonitorSettings(_Frozen):
    table: str = Field("monitoring_metrics", description="Delta table under <storage.root>/monitoring/")
    bins: int = Field(10, ge=2, description="PSI bins: quantiles of the training split")
    ks_bins: int = Field(100, ge=10, description="fine quantile bins the KS statistic is read from (a multiple of bins)")
    top_categories: int = Field(20, ge=1, description="categories kept per feature; the rest are pooled as other")
    thresholds: MonitorThresholds = MonitorThresholds()
    feature_thresholds: dict[str, dict[Literal[FEATURE_METRICS], Threshold]] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="per feature, per metric levels that replace thresholds.<metric>")
    performance: PerformanceSettings = PerformanceSettings()
    report: bool = Field(True, description="write the HTML report and log it to MLflow")
    webhook_url: str | None = Field(None, description="POST a JSON alert here when a metric reaches its alert level")
    webhook_timeout_seconds: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _overrides_ordered(self) -> "MonitorSettings":
        if self.ks_bins % self.bins:
            raise ValueError(f"ks_bins ({self.ks_bins}) must be a multiple of bins ({self.bins}): the PSI edges are "
                             "every (ks_bins / bins)-th fine edge")
        for feature, levels in self.feature_thresholds.items():
            for metric, level in levels.items():
                try:
                    _check_levels(metric, level)
                except ValueError as exc:
                    raise ValueError(f"feature_thresholds.{feature}.{exc}") from None
        return self

    def threshold(self, metric: str, feature: str | None = None) -> Threshold:
        """The levels of ``metric`` (a field of ``MonitorThresholds``) for ``feature``; none when unthresholded."""
        override = self.feature_thresholds.get(feature or "", {}).get(metric)
        if override is not None:
            return override
        return getattr(self.thresholds, metric) if metric in MonitorThresholds.model_fields else Threshold()


class PiiSettings(_Frozen):
    key_env: str = Field("LAKEFORGE_PII_KEY", description="environment variable holding the HMAC key")
    dev_key_file: str | None = Field(None, description="local environment only: a generated development key")


class Settings(_Frozen):
    """The whole configuration of one environment."""

    env: str
    project_root: str
    storage: StorageSettings
    spark: SparkSettings
    mlflow: MlflowSettings
    sources: dict[str, SourceSpec]
    features: FeatureSettings
    model: ModelSettings
    score: ScoreSettings
    monitor: MonitorSettings
    pii: PiiSettings = PiiSettings()
    pii_key: SecretStr | None = Field(None, description="read from the environment at load time, never from YAML")
    jdbc_passwords: dict[str, SecretStr] = Field(default_factory=dict,
                                                 description="per JDBC source, from its password_env at load time")

    @model_validator(mode="after")
    def _references_exist(self) -> "Settings":
        for name, source in self.sources.items():
            if source.name != name:
                raise ValueError(f"source file declares name '{source.name}' but is registered as '{name}'")
        known = sorted(self.sources)
        for ref in (self.features.base, *(j.source for j in self.features.joins)):
            if ref not in self.sources:
                raise ValueError(f"features refer to source '{ref}', which is not declared (declared: {known})")
        for join in self.features.joins:
            key = self.sources[join.source].primary_key
            if set(join.keys) != set(key):
                raise ValueError(f"features.joins: joining '{join.source}' on {list(join.keys)} could repeat rows; "
                                 f"join on its primary key {list(key)}")
        return self


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _deep_merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _find_secrets(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            if isinstance(key, str) and _SECRET_KEY.search(key):
                found.append((*path, key))
            found.extend(_find_secrets(value, (*path, str(key))))
    return found


def _has_path(doc: Any, path: tuple[Any, ...]) -> bool:
    for part in path:
        if not isinstance(doc, Mapping) or part not in doc:
            return False
        doc = doc[part]
    return True


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Field names of the model that owns the key at ``loc`` (for 'unknown key' messages)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            annotation = current.model_fields[part].annotation
            args = getattr(annotation, "__args__", ())
            current = args[-1] if args and getattr(annotation, "__origin__", None) is dict else annotation
        elif not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return None


def _describe(error: Mapping[str, Any], layers: list[tuple[Path, dict[str, Any]]]) -> str:
    loc = tuple(error["loc"])
    key_path = ".".join(str(p) for p in loc) or "(top level)"
    # Blame the last layer that defines the deepest existing prefix of the key path.
    blamed = layers[0][0]
    for depth in range(len(loc), 0, -1):
        owners = [path for path, doc in layers if _has_path(doc, loc[:depth])]
        if owners:
            blamed = owners[-1]
            break
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(Settings, loc)
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{blamed}: {key_path}: unknown key{hint}"
    if error["type"] == "missing":
        return f"{blamed}: {key_path}: required key is missing"
    got = error.get("input")
    shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
    return f"{blamed}: {key_path}: {error['msg']}{shown}"


def _resolve_like(layers: list[tuple[Path, dict[str, Any]]]) -> list[tuple[Path, dict[str, Any]]]:
    """A source file with ``like: other`` starts from ``other``'s declaration (its contract) and overrides keys."""
    by_name = {doc.get("name", path.stem): doc for path, doc in layers}
    resolved = []
    for path, doc in layers:
        if "like" in doc:
            base = by_name.get(doc["like"])
            if base is None or "like" in base:
                raise ConfigError(f"{path}: like: '{doc['like']}' must name a source declared without 'like' "
                                  f"(declared: {', '.join(sorted(by_name))})")
            doc = _deep_merge({k: v for k, v in base.items() if k != "name"},
                              {k: v for k, v in doc.items() if k != "like"})
        resolved.append((path, doc))
    return resolved


def _resolve_local(value: str, root: Path) -> str:
    if "://" in value or value.startswith("/"):
        return value
    return str((root / value).resolve())


def load_settings(env: str, conf_dir: str | Path = "conf") -> Settings:
    """Load ``conf/base.yaml`` + ``conf/<env>.yaml`` + ``conf/sources/*.yaml`` into frozen ``Settings``.

    Relative local paths (storage, jar cache, SQLite tracking store, artifact root) resolve against the
    folder that holds ``conf/``, so jobs behave the same from any working directory.
    """
    conf_dir = Path(conf_dir).resolve()
    base_file, env_file = conf_dir / "base.yaml", conf_dir / f"{env}.yaml"
    if not base_file.is_file():
        raise ConfigError(f"{base_file}: not found; pass --conf-dir pointing at the project's conf/ folder")
    if not env_file.is_file():
        available = sorted(p.stem for p in conf_dir.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"{env_file}: unknown environment '{env}'; available: {', '.join(available)}")
    layers: list[tuple[Path, dict[str, Any]]] = [(base_file, _read_yaml(base_file)), (env_file, _read_yaml(env_file))]
    source_layers = [(p, _read_yaml(p)) for p in sorted((conf_dir / "sources").glob("*.yaml"))]

    problems = []
    for path, doc in layers + source_layers:
        for secret in _find_secrets(doc):
            problems.append(f"{path}: {'.'.join(secret)}: secrets must not be stored in YAML; "
                            f"name an environment variable instead (for example {secret[-1]}_env: MY_VAR)")
    if problems:
        raise ConfigError("\n".join(problems))

    merged = _deep_merge(layers[0][1], layers[1][1])
    for key in ("env", "project_root", "sources", "pii_key", "jdbc_passwords"):
        if key in merged:
            raise ConfigError(f"{env_file if key in layers[1][1] else base_file}: {key}: reserved key; "
                              "sources belong in conf/sources/<name>.yaml")
    root = conf_dir.parent
    merged["env"], merged["project_root"] = env, str(root)
    merged["sources"] = {}
    source_layers = _resolve_like(source_layers)
    for path, doc in source_layers:
        merged["sources"][doc.get("name", path.stem)] = doc
        layers.append((path, {"sources": {doc.get("name", path.stem): doc}}))
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(e, layers) for e in exc.errors())) from None

    storage = settings.storage.model_copy(update={
        "root": _resolve_local(settings.storage.root, root),
        "landing": _resolve_local(settings.storage.landing, root),
    })
    spark = settings.spark.model_copy(update={"jar_cache": _resolve_local(settings.spark.jar_cache, root)})
    tracking = settings.mlflow.tracking_uri
    if tracking.startswith("sqlite:///") and not tracking.startswith("sqlite:////"):
        tracking = "sqlite:///" + _resolve_local(tracking[len("sqlite:///"):], root)
    artifact_root = settings.mlflow.artifact_root
    if artifact_root is not None and "://" not in artifact_root:
        artifact_root = Path(_resolve_local(artifact_root, root)).as_uri()
    mlflow = settings.mlflow.model_copy(update={"tracking_uri": tracking, "artifact_root": artifact_root})
    return settings.model_copy(update={"storage": storage, "spark": spark, "mlflow": mlflow,
                                       "pii_key": _pii_key(settings.pii, env, env_file, root),
                                       "jdbc_passwords": _jdbc_passwords(settings.sources)})


def _jdbc_passwords(sources: dict[str, SourceSpec]) -> dict[str, SecretStr]:
    """Each JDBC source's password from its ``password_env`` (absent ones are reported when the source is read)."""
    found = {}
    for name, source in sources.items():
        if source.jdbc is not None and source.jdbc.password_env and os.environ.get(source.jdbc.password_env):
            found[name] = SecretStr(os.environ[source.jdbc.password_env])
    return found


def _pii_key(pii: PiiSettings, env: str, env_file: Path, root: Path) -> SecretStr | None:
    """The PII hashing key: the environment variable, else (local environment only) the development key file."""
    if pii.dev_key_file is not None and env != "local":
        raise ConfigError(f"{env_file}: pii.dev_key_file: a development key is for the local environment only; "
                          f"give {env} its key through the environment variable {pii.key_env}")
    value = os.environ.get(pii.key_env)
    if not value and pii.dev_key_file is not None:
        path = Path(_resolve_local(pii.dev_key_file, root))
        value = path.read_text().strip() if path.is_file() else None
    return SecretStr(value) if value else None
