"""Which rows a model was trained on: the holdout split written down as a small JSON-able spec when the model is
trained (``lineage/split.json`` of its MLflow run), and the column that tells, for any row of the gold table,
which side of that split it fell on. Training cuts the split with it; monitoring reads it back to keep the rows
a model was fitted on out of its realised performance.

Random splits hash the entity key with the seed instead of calling ``rand()``: a row lands on the same side
whatever the partitioning. A stratified split cuts each class at its own quantile of that hash; the cuts are
numbers, recorded in the spec, so the same side is found again later without recomputing any quantile.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

SPLIT_ARTIFACT = "lineage/split.json"
_MODULUS = 2_147_483_647  # a prime: hash mod it, divided by it, is uniform on [0, 1)


def unit_hash(columns: list[str], seed: int) -> Column:
    """A number in [0, 1) per row, fixed by the row's ``columns`` and ``seed``."""
    return F.pmod(F.xxhash64(*[F.col(f"`{c}`") for c in columns], F.lit(seed)), F.lit(_MODULUS)) / F.lit(float(_MODULUS))


def class_cuts(frame: DataFrame, hashed: Column, strata: Column | None, probabilities: list[float]
               ) -> list[tuple[Any, list[float]]]:
    """Per class of ``strata`` (one entry with class None when not stratified): the quantiles of ``hashed`` at
    ``probabilities`` (one Spark job)."""
    quantiles = F.percentile_approx(hashed, probabilities, 100_000)
    if strata is None:
        return [(None, [float(c) for c in frame.select(quantiles.alias("q")).first()["q"] or []])]
    rows = frame.groupBy(strata.alias("s")).agg(quantiles.alias("q")).collect()
    return [(row["s"], [float(c) for c in row["q"]]) for row in rows]


def cuts_passed(cuts: list[tuple[Any, list[float]]], strata: Column | None, hashed: Column) -> Column:
    """How many of its class's cuts each row's ``hashed`` value reaches (0: below the first cut). A class absent
    from ``cuts`` passes none."""
    if strata is None:
        return F.size(F.filter(F.array(*[F.lit(c) for c in cuts[0][1]]), lambda c: c <= hashed))
    by_class = F.create_map(*[x for value, edges in cuts for x in (F.lit(value), F.array(*[F.lit(c) for c in edges]))])
    return F.size(F.filter(F.coalesce(by_class[strata], F.array().cast("array<double>")), lambda c: c <= hashed))


def time_spec(column: str, test_from: str) -> dict[str, Any]:
    return {"kind": "time", "column": column, "test_from": test_from}


def stratified_spec(key: list[str], seed: int, label: str | None, cuts: list[tuple[Any, list[float]]]) -> dict[str, Any]:
    """``label`` is the gold column the classes come from (None: a regressor, not stratified)."""
    return {"kind": "stratified", "key": list(key), "seed": seed, "label": label,
            "cuts": [[value, edges[0]] for value, edges in cuts]}


def spec_columns(spec: dict[str, Any]) -> list[str]:
    """The gold columns ``in_training`` reads."""
    if spec["kind"] == "time":
        return [spec["column"]]
    return [*spec["key"], *([spec["label"]] if spec["label"] else [])]


def in_training(spec: dict[str, Any], frame: DataFrame) -> Column:
    """True on the rows of ``frame`` (gold rows with a label) that fall in the training split of ``spec``."""
    if spec["kind"] == "time":
        column = spec["column"]
        return F.col(f"`{column}`") < F.lit(spec["test_from"]).cast(frame.schema[column].dataType)
    hashed = unit_hash(spec["key"], spec["seed"])
    strata = F.col(f"`{spec['label']}`").cast("double") if spec["label"] else None
    cuts = [(None if value is None else float(value), [cut]) for value, cut in spec["cuts"]]
    return cuts_passed(cuts, strata, hashed) > 0


def load_spec(run_id: str) -> dict[str, Any] | None:
    """The split spec the training run ``run_id`` logged; None for a run from before specs were logged (MLflow's
    tracking URI must point at the run's store)."""
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{SPLIT_ARTIFACT}")
    except Exception:  # noqa: BLE001 - MLflow raises several types for a missing artifact
        return None
