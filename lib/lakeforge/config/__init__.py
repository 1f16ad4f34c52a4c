"""Typed, frozen configuration loaded once at the edge from ``conf/``.

``conf/base.yaml`` is deep-merged with ``conf/<env>.yaml``; every file in ``conf/sources/`` declares one
source. The merged document is validated with pydantic; any error names the file, the key path and
what was expected. Secrets never come from YAML: a key that looks like one is refused, and settings name
the environment variable to read instead (read here, at load time, never deeper in the code).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator

from lakeforge.config._base import SPARK_TYPES, _Frozen
from lakeforge.config.monitoring import (ABSOLUTE, FEATURE_METRICS, LOWER_IS_WORSE, MonitorSettings, MonitorThresholds,
                                         PerformanceSettings, Threshold)
from lakeforge.config.secrets import find_secrets
from lakeforge.config.serving import ApiKey, JwtSettings, ServeSettings
from lakeforge.errors import ConfigError
from lakeforge.config.sources import FILE_KINDS, ColumnSpec, Expectation, JdbcSpec, KafkaSpec, SourceSpec
from lakeforge.config.stages import (SPACE_KINDS, AsOfSpec, CostSettings, DeepSettings, FeatureSettings, InstancePrice, JoinSpec,
                                     MlflowSettings, ModelSettings, PiiSettings, ScoreSettings, SearchSettings,
                                     SparkSettings, SplitSettings, StorageSettings)

__all__ = ["ApiKey", "JwtSettings", "ServeSettings", "ABSOLUTE", "FEATURE_METRICS", "FILE_KINDS", "LOWER_IS_WORSE", "SPACE_KINDS", "SPARK_TYPES", "ColumnSpec",
           "AsOfSpec", "ConfigError", "CostSettings", "DeepSettings", "Expectation", "InstancePrice", "FeatureSettings", "JdbcSpec", "JoinSpec", "KafkaSpec", "MlflowSettings", "ModelSettings",
           "MonitorSettings", "MonitorThresholds", "PerformanceSettings", "PiiSettings", "ScoreSettings",
           "SearchSettings", "Settings", "SourceSpec", "SparkSettings", "SplitSettings", "StorageSettings",
           "Threshold", "load_settings"]


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
    cost: CostSettings = CostSettings()
    serve: ServeSettings = ServeSettings()
    pii_key: SecretStr | None = Field(None, description="read from the environment at load time, never from YAML")
    jdbc_passwords: dict[str, SecretStr] = Field(default_factory=dict,
                                                 description="per JDBC source, from its password_env at load time")
    kafka_secrets: dict[str, dict[str, SecretStr]] = Field(
        default_factory=dict, description="per Kafka source, consumer setting -> value, from its *_env at load time")
    webhook_url: SecretStr | None = Field(None, description="monitor.webhook_url, or the value of the environment "
                                                            "variable monitor.webhook_url_env names, at load time")
    origins: dict[str, str] = Field(default_factory=dict, description="key path -> the file that set it (the last "
                                                                      "layer that did), for error messages")

    def origin(self, key_path: str) -> str | None:
        """The YAML file that set ``key_path`` (``features.numeric``, ``sources.flights.columns`` ...), or the file of
        its nearest parent that a file set; None when the value is lakeforge's default."""
        parts = key_path.split(".")
        for depth in range(len(parts), 0, -1):
            prefix = ".".join(parts[:depth])
            if prefix in self.origins:
                return self.origins[prefix]
            inside = [file for key, file in self.origins.items() if key.startswith(prefix + ".")]
            if inside:  # the file that sets the section the key belongs in (the last layer that does)
                return inside[-1]
        return None

    def future_joins(self) -> dict[str, str]:
        """The feature joins that could give a base row a joined row from after its own time: exact joins on a source
        with an event time, not declared ``point_in_time_safe``: key path -> what is wrong and the fix. Training
        refuses them."""
        found = {}
        for i, join in enumerate(self.features.joins):
            event_time = self.sources[join.source].event_time
            if join.as_of is None and event_time and not join.point_in_time_safe:
                found[f"features.joins.{i}"] = (
                    f"joins '{join.source}' exactly on {list(join.keys)}, but its rows carry an "
                    f"event time ({event_time}): a row observed after the base row's time can be joined, and the model "
                    "would learn from the future. Make it a point-in-time join (as_of: {time: <the base row's time>, "
                    "lookback: '3 hours'}), or set point_in_time_safe: true if every joined row is known before the "
                    "base rows that join it")
        return found

    @model_validator(mode="after")
    def _references_exist(self) -> "Settings":
        for name, source in self.sources.items():
            if source.name != name:
                raise ValueError(f"source file declares name '{source.name}' but is registered as '{name}'")
        known = sorted(self.sources)
        for ref in (self.features.base, *(j.source for j in self.features.joins)):
            if ref not in self.sources:
                raise ValueError(f"features refer to source '{ref}', which is not declared (declared: {known})")
        for i, join in enumerate(self.features.joins):
            key = self.sources[join.source].primary_key
            if join.as_of is not None:
                if join.point_in_time_safe:
                    raise ValueError(f"features.joins.{i} ('{join.source}'): an as-of join is point-in-time by "
                                     "construction; remove point_in_time_safe")
                if join.as_of.source_time is None and self.sources[join.source].event_time is None:
                    raise ValueError(f"features.joins.{i}: the as-of join with '{join.source}' needs its event time; "
                                     f"set as_of.source_time, or event_time in source '{join.source}'")
                continue
            if set(join.keys) != set(key):
                raise ValueError(f"features.joins: joining '{join.source}' on {list(join.keys)} could repeat rows; "
                                 f"join on its primary key {list(key)}")
        if self.storage.by_name:
            names = {**{f"sources.{n}": n for n in self.sources}, "features.table": self.features.table,
                     "score.table": self.score.table, "monitor.table": self.monitor.table}
            bad = [f"{key} '{value}'" for key, value in names.items() if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value)]
            if bad:
                raise ValueError(f"storage.schema addresses tables by name, and {', '.join(bad)} cannot be part of a "
                                 "table name: use letters, digits and _ only")
        return self


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


def _leaf_paths(node: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Key paths of the values a YAML document sets (a list is one value)."""
    if isinstance(node, Mapping) and node:
        return [leaf for key, value in node.items() for leaf in _leaf_paths(value, (*path, str(key)))]
    return [".".join(path)] if path else []


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
        return sorted(field.alias or name for name, field in current.model_fields.items())
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


_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # s3://, dbfs:/, file:/ (two letters or more: not C:)


def _resolve_local(value: str, root: Path) -> str:
    if _URI_SCHEME.match(value) or value.startswith("/"):
        return value
    return str((root / value).resolve())


def _env_layers(conf_dir: Path, env: str) -> list[tuple[Path, dict[str, Any]]]:
    """``<env>.yaml`` and, first, the environments it ``extends`` (one name), each overlaying the one before.

    A variant of an environment (``databricks_dev.yaml``: ``extends: databricks``) then states only what differs.
    """
    chain: list[tuple[Path, dict[str, Any]]] = []
    name: str | None = env
    while name is not None:
        path = conf_dir / f"{name}.yaml"
        if any(p == path for p, _ in chain):
            raise ConfigError(f"{chain[-1][0]}: extends: '{name}' makes a cycle "
                              f"({' -> '.join(p.stem for p, _ in chain)} -> {name})")
        if not path.is_file():
            available = sorted(p.stem for p in conf_dir.glob("*.yaml") if p.stem != "base")
            where = f"{chain[-1][0]}: extends: " if chain else f"{path}: "
            raise ConfigError(f"{where}unknown environment '{name}'; available: {', '.join(available)}")
        doc = _read_yaml(path)
        parent = doc.pop("extends", None)
        if parent is not None and not isinstance(parent, str):
            raise ConfigError(f"{path}: extends: expected the name of one environment, got {parent!r}")
        chain.append((path, doc))
        name = parent
    return chain[::-1]


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
    layers: list[tuple[Path, dict[str, Any]]] = [(base_file, _read_yaml(base_file)), *_env_layers(conf_dir, env)]
    source_layers = [(p, _read_yaml(p)) for p in sorted((conf_dir / "sources").glob("*.yaml"))]

    problems = [f"{path}: {found}" for path, doc in layers + source_layers for found in find_secrets(doc)]
    if problems:
        raise ConfigError("\n".join(problems))

    merged: dict[str, Any] = {}
    for _, doc in layers:
        merged = _deep_merge(merged, doc)
    for key in ("env", "project_root", "sources", "pii_key", "jdbc_passwords", "kafka_secrets", "origins", "webhook_url"):
        if key in merged:
            raise ConfigError(f"{next(path for path, doc in reversed(layers) if key in doc)}: {key}: reserved key; "
                              "sources belong in conf/sources/<name>.yaml")
    root = conf_dir.parent
    merged["env"], merged["project_root"] = env, str(root)
    merged["sources"] = {}
    source_layers = _resolve_like(source_layers)
    for path, doc in source_layers:
        merged["sources"][doc.get("name", path.stem)] = doc
        layers.append((path, {"sources": {doc.get("name", path.stem): doc}}))
    merged["origins"] = {leaf: str(path) for path, doc in layers for leaf in _leaf_paths(doc)}
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(e, layers) for e in exc.errors())) from None

    storage = settings.storage.model_copy(update={
        key: _resolve_local(value, root) for key, value in (
            ("root", settings.storage.root), ("files", settings.storage.files),
            ("landing", settings.storage.landing), ("metastore", settings.storage.metastore)) if value is not None})
    conf = dict(settings.spark.conf)
    if storage.metastore is not None:  # Spark's session catalog kept between jobs: a Derby metastore and a warehouse
        conf = {"spark.sql.catalogImplementation": "hive",
                "spark.sql.warehouse.dir": f"{storage.metastore}/warehouse",
                "spark.hadoop.javax.jdo.option.ConnectionURL":
                    f"jdbc:derby:;databaseName={storage.metastore}/metastore_db;create=true",
                "spark.driver.extraJavaOptions": f"-Dderby.system.home={storage.metastore}",  # derby.log there
                **conf}
    spark = settings.spark.model_copy(update={
        "conf": conf,
        "jar_cache": _resolve_local(settings.spark.jar_cache, root),
        # not resolved: a venv's python is a symlink, and only the link's path knows the venv
        "python": settings.spark.python and str(root / settings.spark.python)})
    if spark.event_log_dir:  # Spark's own event log, which the job_runs cost report reads back
        log_dir = spark.event_log_dir if "://" in spark.event_log_dir else Path(
            _resolve_local(spark.event_log_dir, root)).as_uri()
        spark = spark.model_copy(update={"event_log_dir": log_dir, "conf": {
            "spark.eventLog.enabled": "true", "spark.eventLog.dir": log_dir, "spark.eventLog.compress": "false",
            **spark.conf}})
    tracking = settings.mlflow.tracking_uri
    if tracking.startswith("sqlite:///") and not tracking.startswith("sqlite:////"):
        tracking = "sqlite:///" + _resolve_local(tracking[len("sqlite:///"):], root)
    artifact_root = settings.mlflow.artifact_root
    if artifact_root is not None and "://" not in artifact_root:
        artifact_root = Path(_resolve_local(artifact_root, root)).as_uri()
    mlflow = settings.mlflow.model_copy(update={"tracking_uri": tracking, "artifact_root": artifact_root})
    return settings.model_copy(update={"storage": storage, "spark": spark, "mlflow": mlflow,
                                       "pii_key": _pii_key(settings.pii, env, env_file, root,
                                                           local=any(p.name == "local.yaml" for p, _ in layers)),
                                       "jdbc_passwords": _jdbc_passwords(settings.sources),
                                       "kafka_secrets": _kafka_secrets(settings.sources),
                                       "webhook_url": _webhook_url(settings.monitor)})


def _webhook_url(monitor: MonitorSettings) -> SecretStr | None:
    """The alert webhook's URL: from YAML when it carries no credential, else from the environment variable that
    ``monitor.webhook_url_env`` names (an unset variable is reported when an alert is to be posted)."""
    if monitor.webhook_url_env:
        value = os.environ.get(monitor.webhook_url_env)
        return SecretStr(value) if value else None
    return SecretStr(monitor.webhook_url) if monitor.webhook_url else None


def _jdbc_passwords(sources: dict[str, SourceSpec]) -> dict[str, SecretStr]:
    """Each JDBC source's password from its ``password_env`` (absent ones are reported when the source is read)."""
    found = {}
    for name, source in sources.items():
        if source.jdbc is not None and source.jdbc.password_env and os.environ.get(source.jdbc.password_env):
            found[name] = SecretStr(os.environ[source.jdbc.password_env])
    return found


def _kafka_secrets(sources: dict[str, SourceSpec]) -> dict[str, dict[str, SecretStr]]:
    """Each Kafka source's secret consumer settings from the environment variables it names (an unset one is
    reported when the stream starts)."""
    return {name: {key: SecretStr(os.environ[env]) for key, env in source.kafka.secret_envs().items()
                   if os.environ.get(env)}
            for name, source in sources.items() if source.kafka is not None}


def _pii_key(pii: PiiSettings, env: str, env_file: Path, root: Path, local: bool) -> SecretStr | None:
    """The PII hashing key: the environment variable, else (the local environment and envs that extend it only)
    the development key file."""
    if pii.dev_key_file is not None and not local:
        raise ConfigError(f"{env_file}: pii.dev_key_file: a development key is for the local environment only; "
                          f"give {env} its key through the environment variable {pii.key_env}")
    value = os.environ.get(pii.key_env)
    if not value and pii.dev_key_file is not None:
        path = Path(_resolve_local(pii.dev_key_file, root))
        value = path.read_text().strip() if path.is_file() else None
    return SecretStr(value) if value else None
