"""The model's MLflow signature against an input table's schema: checked before any scoring job runs."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from lakeforge.errors import SignatureMismatchError

# MLflow signature type names -> the Spark types a column may have to satisfy them.
_COMPATIBLE = {
    "string": (T.StringType,),
    "double": (T.DoubleType, T.FloatType, T.IntegerType, T.LongType, T.ShortType, T.DecimalType),
    "float": (T.FloatType, T.IntegerType, T.ShortType),
    "long": (T.LongType, T.IntegerType, T.ShortType),
    "integer": (T.IntegerType, T.ShortType),
    "boolean": (T.BooleanType,),
}


def check_signature(frame: DataFrame, signature_inputs: list[dict], table: str, version: int) -> None:
    """Every input column of the signature must exist in ``frame`` with a compatible type."""
    fields = {f.name: f.dataType for f in frame.schema.fields}
    problems = []
    for spec in signature_inputs:
        name, expected = spec["name"], spec["type"]
        if name not in fields:
            problems.append(f"column '{name}' is missing (expected {expected})")
        elif not isinstance(fields[name], _COMPATIBLE.get(expected, ())):
            problems.append(f"column '{name}' has type {fields[name].simpleString()}, expected {expected}")
    if problems:
        raise SignatureMismatchError(f"input {table} (Delta version {version}) does not match the model's "
                                     f"signature: " + "; ".join(problems))
