"""The Spark-free model logged beside every trained version, for online serving.

A registered version's main model is the Spark ML pipeline (or the torch network scored through Spark); its pyfunc
needs a JVM. The serving model answers the same question from plain records, with numpy, pyarrow, sqlglot and
xgboost (or torch) only:

1. the raw input columns are typed as in the gold table (``ServingSpec.inputs``);
2. the derived columns the features need are computed from them with the gold table's own Spark SQL expressions
   (``models.expressions``) and cast to the gold table's types;
3. the features are encoded as the fitted pipeline does: a categorical becomes its StringIndexer index (labels in
   the fitted order; a null or unseen value gets the extra index, ``handleInvalid=keep``; a non-string column is
   first written as Spark's CAST AS STRING writes it); numerics become doubles, a null is NaN (xgboost's missing);
4. the booster gives the margin, and a classifier's probability is its logistic in float32, as ``xgboost.spark``
   computes it; the torch network goes through its own ``Preprocessing``.

``ServingSpec`` is plain JSON (``serving_spec.json``), beside the booster (``booster.ubj``) or the network's files.
Registration checks parity on holdout rows against the batch scores of the same version (``train.serving``).

Nothing here imports pyspark.
"""

from __future__ import annotations

import json
from datetime import datetime
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lakeforge.errors import InvalidRecordsError
from lakeforge.models.expressions import compile_expression, spark_string

SPEC_FILE = "serving_spec.json"
BOOSTER_FILE = "booster.ubj"
ARTIFACT_NAME = "serving"  # the logged model's name in its training run
SERVING_URI_TAG = "serving_model_uri"      # on the training run and the version: the Spark-free model's URI
UNAVAILABLE_TAG = "serving_unavailable"    # on the training run and the version: why there is none

# Spark's simpleString of a gold column -> the Arrow type its values take here
ARROW_TYPES: dict[str, pa.DataType] = {
    "tinyint": pa.int8(), "smallint": pa.int16(), "int": pa.int32(), "bigint": pa.int64(),
    "float": pa.float32(), "double": pa.float64(), "string": pa.string(), "boolean": pa.bool_(),
    "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC"), "timestamp_ntz": pa.timestamp("us"),
}
JSON_TYPES = {"tinyint": "integer", "smallint": "integer", "int": "integer", "bigint": "integer",
              "float": "number", "double": "number", "string": "string", "boolean": "boolean",
              "date": "date string (YYYY-MM-DD)", "timestamp": "timestamp string (ISO 8601)",
              "timestamp_ntz": "timestamp string (ISO 8601)"}


@dataclass(frozen=True)
class ServingSpec:
    """Everything but the weights: what comes in, what is derived from it, how the features are encoded."""

    task: str
    kind: str                                  # "xgboost" or "torch"
    inputs: dict[str, str]                     # raw column -> Spark type, in request order
    derived: dict[str, tuple[str, str]]        # derived column -> (Spark SQL expression, Spark type), in order
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    labels: dict[str, list[str]] = field(default_factory=dict)  # xgboost: StringIndexer labels per categorical
    threshold: float = 0.5
    hashed: tuple[str, ...] = ()               # inputs that are PII: HMAC-SHA256 hex (as in silver) before the model

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "ServingSpec":
        raw = json.loads(text)
        return cls(raw["task"], raw["kind"], dict(raw["inputs"]),
                   {k: (v[0], v[1]) for k, v in raw["derived"].items()}, tuple(raw["categorical"]),
                   tuple(raw["numeric"]), raw.get("labels", {}), raw.get("threshold", 0.5),
                   tuple(raw.get("hashed", ())))

    def check(self) -> None:
        """Every type known and every derived expression compilable (``UnsupportedExpressionError`` names it)."""
        for name, kind in [*self.inputs.items(), *((n, t) for n, (_, t) in self.derived.items())]:
            if kind not in ARROW_TYPES:
                raise ValueError(f"column {name!r} is {kind}, which the serving model does not take; cast it in "
                                 "features.derived to one of " + ", ".join(ARROW_TYPES))
        for expression, _ in self.derived.values():
            compile_expression(expression)


def _typed(name: str, values: pd.Series, kind: str) -> pa.Array:
    target = ARROW_TYPES[kind]
    expected = JSON_TYPES[kind]
    try:
        if pa.types.is_date(target) or pa.types.is_timestamp(target):
            parsed = pd.to_datetime(values, errors="raise", utc=pa.types.is_timestamp(target) and target.tz is not None)
            array = pa.array(parsed.dt.date if pa.types.is_date(target) else parsed, from_pandas=True)
        else:
            array = pa.array(values.astype(object).where(values.notna(), None).tolist(), from_pandas=True)
        if pa.types.is_string(target) and not (pa.types.is_string(array.type) or pa.types.is_null(array.type)):
            raise TypeError
        if pa.types.is_boolean(target) and not (pa.types.is_boolean(array.type) or pa.types.is_null(array.type)):
            raise TypeError
        if (pa.types.is_integer(target) or pa.types.is_floating(target)) and not (
                pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_null(array.type)):
            raise TypeError
        return pc.cast(array, target)  # safe: 2.5 for an integer column is refused, not truncated
    except (TypeError, ValueError, pa.ArrowException, OverflowError):
        raise InvalidRecordsError(f"field '{name}': expected {expected} (gold type {kind})", name, expected) from None


def typed_inputs(spec: ServingSpec, frame: pd.DataFrame) -> dict[str, pa.Array]:
    """The raw inputs as Arrow arrays of their gold types; a missing or mistyped field is ``InvalidRecordsError``."""
    columns = {}
    for name, kind in spec.inputs.items():
        if name not in frame.columns:
            raise InvalidRecordsError(f"field '{name}' is missing: expected {JSON_TYPES[kind]} (gold type {kind}), "
                                 "or null", name, JSON_TYPES[kind])
        columns[name] = _typed(name, frame[name], kind)
    return columns


def _json_value(value: Any, kind: str) -> Any:
    """``value`` (parsed JSON) as a value of gold type ``kind``; ``TypeError`` when it is not one."""
    if value is None:
        return None
    if kind in ("tinyint", "smallint", "int", "bigint"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not value.is_integer()):
            raise TypeError
        return int(value)
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError
        return float(value)
    if kind == "string":
        if not isinstance(value, str):
            raise TypeError
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise TypeError
        return value
    if not isinstance(value, str):
        raise TypeError
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise TypeError from None
    return parsed.date() if kind == "date" else parsed


def columns_from_records(spec: ServingSpec, records: list[Mapping[str, Any]]) -> dict[str, pa.Array]:
    """Parsed JSON records as typed input columns: every input must be present in every record (null allowed);
    a missing or mistyped one is ``InvalidRecordsError`` naming the record, the field and the expected type."""
    columns = {}
    for name, kind in spec.inputs.items():
        values = []
        for i, record in enumerate(records):
            if name not in record:
                raise InvalidRecordsError(f"record {i}: field '{name}' is missing: expected {JSON_TYPES[kind]} or null",
                                     name, JSON_TYPES[kind])
            try:
                values.append(_json_value(record[name], kind))
            except TypeError:
                raise InvalidRecordsError(f"record {i}: field '{name}' is {type(record[name]).__name__} "
                                     f"{json.dumps(record[name])[:40]}: expected {JSON_TYPES[kind]} or null", name,
                                     JSON_TYPES[kind]) from None
        try:
            columns[name] = pa.array(values, type=ARROW_TYPES[kind])
        except (pa.ArrowException, OverflowError):
            raise InvalidRecordsError(f"field '{name}': a value is out of range for gold type {kind}", name,
                                 JSON_TYPES[kind]) from None
    return columns


def feature_columns(spec: ServingSpec, inputs: Mapping[str, pa.Array], rows: int) -> dict[str, pa.Array]:
    """Inputs plus the derived columns, each computed as the gold table does and cast to its gold type."""
    columns = dict(inputs)
    for name, (expression, kind) in spec.derived.items():
        value = compile_expression(expression).evaluate(columns, rows)
        columns[name] = pc.cast(value, ARROW_TYPES[kind], safe=False)
    return columns


def spark_strings(array: pa.Array) -> list[str | None]:
    """Values as StringIndexer sees a non-string column: Spark's CAST AS STRING (``expressions.spark_string``)."""
    return spark_string(array, len(array)).to_pylist()


def xgboost_matrix(spec: ServingSpec, columns: Mapping[str, pa.Array], rows: int) -> np.ndarray:
    """The assembled feature matrix (indexed categoricals, then numerics; NaN for missing), float32 as
    ``xgboost.spark`` hands it to the booster."""
    x = np.empty((rows, len(spec.categorical) + len(spec.numeric)), dtype=np.float32)
    for i, name in enumerate(spec.categorical):
        labels = spec.labels[name]
        index = {label: position for position, label in enumerate(labels)}
        x[:, i] = [index.get(v, len(labels)) if v is not None else len(labels)
                   for v in spark_strings(columns[name])]
    for j, name in enumerate(spec.numeric, start=len(spec.categorical)):
        values = pc.cast(columns[name], pa.float64()).to_numpy(zero_copy_only=False)
        x[:, j] = values
    return x


class ServingModel:
    """The Spark-free model, loaded from a folder holding ``serving_spec.json`` and its weights."""

    def __init__(self, spec: ServingSpec, predictor: Any):
        self.spec, self._predictor = spec, predictor

    @classmethod
    def load(cls, folder: str | Path) -> "ServingModel":
        folder = Path(folder)
        spec = ServingSpec.from_json((folder / SPEC_FILE).read_text())
        spec.check()
        if spec.kind == "xgboost":
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(str(folder / BOOSTER_FILE))
            booster.set_param({"nthread": 1})  # a request is small; threads are the server's to schedule
            return cls(spec, booster)
        from lakeforge.models.serving_torch import load_network_predictor

        return cls(spec, load_network_predictor(spec, folder))

    def predict_pandas(self, frame: pd.DataFrame) -> np.ndarray:
        """P(class 1) of a classifier, the value of a regressor, for each record of ``frame`` (float64)."""
        if len(frame) == 0:
            return np.empty(0, dtype=np.float64)
        return self.predict_columns(typed_inputs(self.spec, frame), len(frame))

    def predict_columns(self, inputs: Mapping[str, pa.Array], rows: int) -> np.ndarray:
        """The same from typed input columns (``columns_from_records``); PII inputs already hashed."""
        return self.score(inputs, rows)[1]

    def score(self, inputs: Mapping[str, pa.Array], rows: int) -> tuple[dict[str, pa.Array], np.ndarray]:
        """The feature columns (inputs and derived) and the model's output for each row."""
        columns = feature_columns(self.spec, inputs, rows)
        if self.spec.kind != "xgboost":
            return columns, self._predictor(columns)
        x = xgboost_matrix(self.spec, columns, rows)
        if self.spec.task == "classification":
            margins = np.asarray(self._predictor.inplace_predict(x, missing=np.nan, predict_type="margin"))
            return columns, _expit32(margins).astype(np.float64)
        values = np.asarray(self._predictor.inplace_predict(x, missing=np.nan), dtype=np.float32)
        return columns, values.astype(np.float64)


def serving_requirements(kind: str) -> list[str]:
    """What the serving model needs installed (the versions here): no pyspark."""
    from importlib.metadata import version

    packages = ["mlflow", "numpy", "pandas", "pyarrow", "scipy", "sqlglot", "xgboost" if kind == "xgboost" else "torch"]
    return [f"{p}=={version(p)}" for p in packages]


def write_xgboost(folder: Path, spec: ServingSpec, booster: Any) -> Path:
    """``folder`` made to hold ``spec`` and ``booster`` (an ``xgboost.Booster``): what ``ServingModel.load`` reads."""
    folder.mkdir(parents=True)
    (folder / SPEC_FILE).write_text(spec.to_json())
    booster.save_model(str(folder / BOOSTER_FILE))
    return folder


def log_serving_model(folder: Path, kind: str) -> str:
    """Log the model in ``folder`` to the active MLflow run as the pyfunc ``serving``; its model URI. The lakeforge
    package travels with it (``code_paths``), so ``mlflow models serve`` needs only ``serving_requirements``."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory(prefix="lakeforge-code-") as scratch:
        info = mlflow.pyfunc.log_model(name=ARTIFACT_NAME, python_model=ServingPyfunc(),
                                       artifacts={"serving": str(folder)},
                                       code_paths=[str(_package_source(Path(scratch)))],
                                       pip_requirements=serving_requirements(kind))
    return info.model_uri


def _package_source(scratch: Path) -> Path:
    """The lakeforge package as a folder: where it is installed, or extracted into ``scratch`` when it was
    imported from an archive (spark-submit ships lakeforge as a wheel in ``--py-files``)."""
    import zipfile

    import lakeforge

    package = Path(lakeforge.__file__).parent
    if package.is_dir():
        return package
    archive = next(p for p in package.parents if p.is_file())
    inner = package.relative_to(archive).as_posix()
    with zipfile.ZipFile(archive) as bundle:
        for name in bundle.namelist():
            if name.startswith(f"{inner}/") and "__pycache__" not in name:
                bundle.extract(name, scratch)
    return scratch / inner


def _expit32(margins: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(margins.astype(np.float32))


try:  # MLflow's pyfunc flavour: ``mlflow models serve`` and ``mlflow.pyfunc.load_model`` load the same model
    import mlflow.pyfunc

    class ServingPyfunc(mlflow.pyfunc.PythonModel):
        def load_context(self, context) -> None:
            self.model = ServingModel.load(Path(context.artifacts["serving"]))

        def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
            return self.model.predict_pandas(model_input)
except ImportError:  # pragma: no cover - a server with the serving model alone
    ServingPyfunc = None  # type: ignore[assignment,misc]
