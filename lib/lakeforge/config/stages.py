"""Settings of the platform (storage, Spark, MLflow, PII) and of the ML stages (features, model, scoring)."""

from __future__ import annotations

import re
from typing import Any, Literal, Mapping

from pydantic import ConfigDict, Field, field_validator, model_validator

from lakeforge.config._base import _Frozen, _to_str


_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: The layers a table belongs to, each a folder under ``root`` (tables by path) or a name prefix (tables by name).
TABLE_LAYERS = ("bronze", "silver", "quarantine", "quality", "gold", "predictions", "monitoring", "operations",
                "staging")


class StorageSettings(_Frozen):
    """Where lakeforge keeps its tables and files: tables by path under ``root``, or by name in ``catalog.schema``
    (Unity Catalog on Databricks, Spark's session catalog elsewhere); files (stream and model checkpoints, reports,
    search state) under ``files``, which defaults to ``root``."""

    root: str | None = Field(None, description="tables by path: each table at <root>/<layer>/<name>; null when "
                                               "tables are addressed by name (schema)")
    catalog: str | None = Field(None, pattern=_IDENTIFIER,
                                description="tables by name: the catalog (a Unity Catalog catalog; spark_catalog: "
                                            "Spark's session catalog); null: the session's current catalog")
    schema_: str | None = Field(None, alias="schema", pattern=_IDENTIFIER,
                                description="tables by name: the schema (database) holding them, as "
                                            "<catalog>.<schema>.<layer>_<name>")
    layer_schemas: dict[str, str] = Field(default_factory=dict,
                                          description="tables by name: a schema per layer instead of schema (e.g. "
                                                      "{bronze: raw, gold: features}); the layer prefix is kept")
    create_schema: bool = Field(False, description="tables by name: create missing schemas (CREATE SCHEMA IF NOT "
                                                   "EXISTS) instead of failing before any work")
    files: str | None = Field(None, description="files: stream and model checkpoints, reports, search state (a "
                                                "Unity Catalog Volume path on Databricks); default <root>")
    landing: str = Field(description="where raw files land; source paths are relative to it")
    metastore: str | None = Field(None, description="a local Hive metastore (Derby) and warehouse folder, so that "
                                                    "Spark's session catalog keeps tables between jobs; null on "
                                                    "platforms with their own catalog")
    umask: str | None = Field(None, pattern=r"^0?[0-7]{3}$",
                              description="local file systems: the umask jobs write with (077: owner only), for the "
                                          "lakehouse, the MLflow store and the event log; null: the process's own")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_addressing(self) -> "StorageSettings":
        by_name = self.schema_ is not None or bool(self.layer_schemas)
        if by_name and self.root is not None:
            raise ValueError("storage.root and storage.schema are both set: tables live either by path under root or "
                             "by name in schema; set root: null (and files: a folder or Volume) to address them by name")
        if not by_name and self.root is None:
            raise ValueError("storage: set root (tables by path) or schema (tables by name in a catalog)")
        if by_name and self.files is None:
            raise ValueError("storage.files is required when tables are addressed by name (schema): the folder or "
                             "Unity Catalog Volume (/Volumes/<catalog>/<schema>/<volume>) for checkpoints and reports")
        unknown = sorted(set(self.layer_schemas) - set(TABLE_LAYERS))
        if unknown:
            raise ValueError(f"storage.layer_schemas: unknown layer(s) {unknown}; layers: {', '.join(TABLE_LAYERS)}")
        bad = sorted(v for v in self.layer_schemas.values() if not re.match(_IDENTIFIER, v))
        if bad:
            raise ValueError(f"storage.layer_schemas: {bad} are not plain identifiers (letters, digits, _)")
        return self

    @property
    def by_name(self) -> bool:
        """Tables addressed by name in a catalog (else by path under ``root``)."""
        return self.root is None

    @property
    def files_root(self) -> str:
        return (self.files or self.root or "").rstrip("/")

    @property
    def umask_bits(self) -> int | None:
        return None if self.umask is None else int(self.umask, 8)

    def table_ref(self, layer: str, name: str) -> str:
        """The table's identifier: ``<root>/<layer>/<name>`` or ``[<catalog>.]<schema>.<layer>_<name>`` (gold,
        predictions and monitoring tables keep their configured name without the prefix)."""
        if layer not in TABLE_LAYERS:
            raise ValueError(f"unknown table layer {layer!r}; layers: {', '.join(TABLE_LAYERS)}")
        if not self.by_name:
            return f"{self.root.rstrip('/')}/{layer}/{name}"
        table = name if layer in ("gold", "predictions", "monitoring", "quality", "operations") else f"{layer}_{name}"
        schema = self.layer_schemas.get(layer, self.schema_)
        if schema is None:
            raise ValueError(f"storage.schema is not set and storage.layer_schemas has no schema for layer {layer}")
        return ".".join(p for p in (self.catalog, schema, table) if p)

    def file_path(self, *parts: str) -> str:
        """A file location under ``files`` (or ``root``)."""
        return "/".join((self.files_root, *parts))

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
    event_log_dir: str | None = Field(None, description="Spark event log folder (any Hadoop path); the job_runs "
                                                        "cost report reads it back; null: no event log, no report")
    python: str | None = Field(None, description="the Python of the driver and the executors (spark.pyspark.python): "
                                                 "a path on every worker, relative: against the project root; "
                                                 "null: local masters use this interpreter, clusters their own")
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


_LOOKBACK = re.compile(r"^\s*(\d+)\s*(second|minute|hour|day|week)s?\s*$")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}


class AsOfSpec(_Frozen):
    """A point-in-time join: each base row takes the latest joined row (same keys) whose event time is at or before
    the base row's time and at most ``lookback`` before it, or nulls."""

    time: str = Field(description="the base row's time: a column or Spark SQL expression over the columns so far")
    source_time: str | None = Field(None, description="the joined source's event time column (default: the "
                                                      "source's event_time)")
    lookback: str = Field(description="how old a joined row may be, e.g. '3 hours', '90 minutes', '2 days'")
    tie_break: str | None = Field("_ingested_at", description="among joined rows of one event time the greatest "
                                                              "wins (a correction ingested later); null: any one")

    @field_validator("lookback")
    @classmethod
    def _duration(cls, value: str) -> str:
        match = _LOOKBACK.match(value)
        if not match or int(match.group(1)) == 0:
            raise ValueError(f"lookback {value!r} is not a positive duration: write it as '<n> seconds|minutes|hours|"
                             "days|weeks', e.g. '3 hours'")
        return value

    @property
    def lookback_seconds(self) -> int:
        number, unit = _LOOKBACK.match(self.lookback).groups()
        return int(number) * _UNIT_SECONDS[unit]


class JoinSpec(_Frozen):
    source: str
    keys: tuple[str, ...] = Field(description="join keys; must be the joined source's primary key (an as-of join: "
                                              "the keys besides time, e.g. the station)")
    left_keys: tuple[str, ...] | None = Field(None, description="the base's columns matching keys (default: same names)")
    as_of: AsOfSpec | None = Field(None, description="a point-in-time join on the joined source's event time")
    point_in_time_safe: bool = Field(False, description="an exact join on a source with an event time, declared "
                                                        "safe: its rows are known before any base row that joins them")

    @model_validator(mode="after")
    def _same_arity(self) -> "JoinSpec":
        if self.left_keys is not None and len(self.left_keys) != len(self.keys):
            raise ValueError(f"join with '{self.source}': left_keys {list(self.left_keys)} and keys {list(self.keys)} "
                             "must pair up one to one")
        return self
    select: dict[str, str] = Field(description="source column -> output column")


class SplitSettings(_Frozen):
    """How the gold rows are split into training and holdout, and the optional cross-validation."""

    kind: Literal["time", "stratified"] = Field(
        "time", description="time: rows with column >= test_from are the holdout; stratified: a seeded random "
                            "holdout of test_fraction with the label's class balance kept")
    column: str | None = Field(None, description="time split: the event-time column")
    test_from: str | None = Field(None, description="time split: rows with column >= test_from form the holdout")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="stratified split: share of rows held out")
    cv_folds: int | None = Field(None, ge=2, le=20, description="k-fold cross-validation on the training split, "
                                                               "reporting mean and spread of each metric")

    @model_validator(mode="after")
    def _time_needs_column(self) -> "SplitSettings":
        if self.kind == "time" and (self.column is None or self.test_from is None):
            raise ValueError("a time split needs column and test_from (e.g. column: event_date, "
                             "test_from: '2024-01-01'), or set kind: stratified")
        return self


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
    """A TPE search over model parameters (``lakeforge.train.tuning``), by Hyperopt or Optuna."""

    engine: Literal["hyperopt", "optuna"] = Field(
        "hyperopt", description="hyperopt: fmin with SparkTrials / Trials; optuna: a TPE study kept in "
                                "search.storage (default: SQLite under <storage.root>/search), so a rerun of the same "
                                "training continues it")
    storage: str | None = Field(None, description="optuna engine: the study storage URL (SQLAlchemy, e.g. "
                                                  "postgresql://host/db or sqlite:////abs/path/optuna.db); required "
                                                  "when storage.root is not a local path")
    strategy: Literal["none", "parallel", "distributed"] = Field(
        "none", description="parallel: trials on Spark executors, single-node xgboost per trial on a sample; "
                            "distributed: trials one after another on the driver, each an xgboost.spark fit")
    max_evals: int = Field(16, ge=1)
    parallelism: int = Field(2, ge=1, description="parallel strategy: trials at once")
    timeout_seconds: int | None = Field(None, ge=1)
    no_progress_evals: int | None = Field(None, ge=1, description="stop after this many trials without improvement")
    sample_rows: int = Field(200_000, ge=100, description="parallel strategy: training rows each trial sees")
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="latest share of the training split used to score trials")
    space: dict[str, dict[str, list[float | int | str]]] = Field(default_factory=dict)

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("expected a database URL such as sqlite:////abs/path/optuna.db or postgresql://host/optuna")
        return value

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


DEEP_SEARCHABLE = {"learning_rate", "batch_size", "hidden_units", "hidden_layers", "embedding_dim", "dropout",
                   "weight_decay"}


class DeepSettings(_Frozen):
    """A PyTorch tabular network (embeddings for categoricals, standardised numerics, an MLP) trained data-parallel
    by Horovod or PySpark's TorchDistributor (``model.framework: torch``)."""

    backend: Literal["horovod", "torch_distributor"] = Field(
        "torch_distributor", description="horovod: horovod.spark.run with DistributedOptimizer; torch_distributor: "
                                         "pyspark.ml.torch.distributor.TorchDistributor with DDP")
    num_processes: int = Field(2, ge=1, description="training processes (one per task slot, barrier mode)")
    use_gpu: bool = Field(False, description="one GPU per process: NCCL on GPU, gloo on CPU")
    hidden_units: int = Field(64, ge=1, description="width of each hidden layer")
    hidden_layers: int = Field(2, ge=1, le=8)
    embedding_dim: int = Field(8, ge=1, description="embedding width of each categorical column")
    max_categories: int = Field(1000, ge=2, description="most frequent categories kept per column; the rest share "
                                                        "one 'other' index")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    learning_rate: float = Field(0.002, gt=0, description="per process; scaled by the number of processes")
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(1024, ge=8, description="rows per process per step")
    max_epochs: int = Field(10, ge=1)
    patience: int = Field(3, ge=1, description="early stopping: epochs without a better validation loss")
    read_batch_rows: int = Field(65_536, ge=1024, description="rows per Arrow batch when a process reads its files")
    checkpoint_dir: str | None = Field(None, description="durable folder for per-epoch checkpoints; default "
                                                         "<storage.root>/checkpoints")
    timeout_seconds: int = Field(3600, ge=10, description="a distributed run that takes longer fails")


class ModelSettings(_Frozen):
    registered_name: str
    task: Literal["classification", "regression"] = Field(
        "classification", description="SparkXGBClassifier (gate on AUC) or SparkXGBRegressor (gate on RMSE)")
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    num_workers: int | Literal["auto"] = Field(1, description="xgboost.spark workers; auto: one per task slot")
    device: Literal["cpu", "cuda"] = "cpu"
    fallback_to_cpu: bool = Field(False, description="train on CPU when device is cuda and no GPU is visible")
    weight_col: str | None = Field(None, description="a gold column of per-row weights")
    min_auc: float = Field(0.5, ge=0.0, le=1.0, description="gate (classification): a model below this is never champion")
    max_rmse: float | None = Field(None, gt=0.0, description="gate (regression): a model above this is never champion")
    min_improvement: float = Field(0.0, ge=0.0, description="gate: margin by which the gate metric must beat the "
                                                            "current champion on the same holdout")
    seed: int = 42
    search: SearchSettings = SearchSettings()
    framework: Literal["xgboost", "torch"] = Field(
        "xgboost", description="xgboost: xgboost.spark (model.params); torch: a PyTorch network (model.deep)")
    deep: DeepSettings = DeepSettings()

    @model_validator(mode="after")
    def _search_fits_framework(self) -> "ModelSettings":
        if self.framework == "torch" and self.search.strategy != "none":
            unknown = sorted(set(self.search.space) - DEEP_SEARCHABLE)
            if unknown:
                raise ValueError(f"search.space has {', '.join(unknown)}, which a torch model does not take; "
                                 f"searchable: {', '.join(sorted(DEEP_SEARCHABLE))}")
            if self.search.strategy == "parallel":
                raise ValueError("search.strategy parallel runs single-node xgboost trials; a torch model searches "
                                 "with strategy distributed (each trial a distributed run)")
        return self

    @field_validator("num_workers", mode="before")
    @classmethod
    def _positive_workers(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError("expected a positive integer, or auto (one worker per task slot of the cluster)")

    @property
    def gate_metric(self) -> str:
        return "auc" if self.task == "classification" else "rmse"


class ScoreSettings(_Frozen):
    table: str
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    method: Literal["transform", "map_in_arrow"] = Field(
        "map_in_arrow", description="transform: the pipeline's own Spark transform; map_in_arrow: indexers in "
                                     "the JVM, then the booster on Arrow batches (bench/score.py compares them)")
    arrow_batch_rows: int = Field(50_000, ge=100, description="rows per Arrow batch handed to Python")


class PiiSettings(_Frozen):
    key_env: str = Field("LAKEFORGE_PII_KEY", description="environment variable holding the HMAC key")
    dev_key_file: str | None = Field(None, description="local environment only: a generated development key")


class InstancePrice(_Frozen):
    vcpus: int = Field(ge=1)
    on_demand: float = Field(ge=0, description="per instance-hour")
    spot: float = Field(ge=0, description="per instance-hour (a typical spot price)")


class CostSettings(_Frozen):
    """Prices for the job_runs cost estimate: executor core-seconds / vCPUs x the instance's hourly price."""

    currency: str = "USD"
    instance_type: str | None = Field(None, description="the worker instance type of this environment")
    capacity: Literal["on_demand", "spot"] = "on_demand"
    prices: dict[str, InstancePrice] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _priced(self) -> "CostSettings":
        if self.instance_type is not None and self.instance_type not in self.prices:
            raise ValueError(f"instance_type {self.instance_type!r} has no entry in cost.prices "
                             f"(priced: {sorted(self.prices)})")
        return self
