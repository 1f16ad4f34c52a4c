"""Splits of the gold rows: the holdout (by time, or a seeded stratified random share), the validation rows
inside the training split (trials of a search, early stopping), and the folds of k-fold cross-validation.

Random splits hash the entity key with the seed instead of calling ``rand()``: a row lands on the same side
whatever the partitioning, so the same data version and seed give the same split on a laptop and a cluster.
Stratification cuts each class at its own quantile of that hash, so every side keeps the class balance.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeforge.config import FeatureSettings

_MODULUS = 2_147_483_647  # a prime: hash mod it, divided by it, is uniform on [0, 1)


def unit_hash(columns: list[str], seed: int) -> Column:
    """A number in [0, 1) per row, fixed by the row's ``columns`` and ``seed``."""
    return F.pmod(F.xxhash64(*[F.col(f"`{c}`") for c in columns], F.lit(seed)), F.lit(_MODULUS)) / F.lit(float(_MODULUS))


def time_split(frame: DataFrame, features: FeatureSettings) -> tuple[DataFrame, DataFrame]:
    """Rows before ``features.split.test_from`` (training) and from it on (holdout)."""
    column = features.split.column
    split_at = F.lit(features.split.test_from).cast(frame.schema[column].dataType)
    return frame.where(F.col(column) < split_at), frame.where(F.col(column) >= split_at)


def _class_cuts(frame: DataFrame, hashed: Column, strata: str | None, probabilities: list[float]) -> Column:
    """Per class of ``strata`` (or overall), how many of the hash quantiles at ``probabilities`` a row passes."""
    quantiles = F.percentile_approx(hashed, probabilities, 100_000)
    if strata is None:
        cuts = frame.select(quantiles.alias("q")).first()["q"] or []
        return F.size(F.filter(F.array(*[F.lit(float(c)) for c in cuts]), lambda c: c <= hashed))
    rows = frame.groupBy(F.col(f"`{strata}`").alias("s")).agg(quantiles.alias("q")).collect()
    by_class = F.create_map(*[x for row in rows for x in (F.lit(row["s"]), F.array(*[F.lit(float(c)) for c in row["q"]]))])
    return F.size(F.filter(by_class[F.col(f"`{strata}`")], lambda c: c <= hashed))


def stratified_split(frame: DataFrame, key: list[str], strata: str | None, fraction: float,
                     seed: int) -> tuple[DataFrame, DataFrame]:
    """(rest, share): ``share`` holds ``fraction`` of each class of ``strata`` (of all rows when None)."""
    hashed = unit_hash(key, seed)
    held_out = _class_cuts(frame, hashed, strata, [fraction]) == 0
    return frame.where(~held_out), frame.where(held_out)


def holdout_split(frame: DataFrame, features: FeatureSettings, key: list[str], seed: int,
                  stratify: bool = True) -> tuple[DataFrame, DataFrame]:
    """(train, holdout) as ``features.split`` declares."""
    if features.split.kind == "time":
        return time_split(frame, features)
    return stratified_split(frame, key, "label" if stratify else None, features.split.test_fraction, seed)


def validation_flag(train: DataFrame, features: FeatureSettings, fraction: float, key: list[str], seed: int,
                    stratify: bool = True) -> Column:
    """True on the rows of ``train`` that validate (search trials, early stopping): the latest ``fraction`` of
    the training period for a time split, a stratified seeded share otherwise."""
    if features.split.kind == "stratified":
        return _class_cuts(train, unit_hash(key, seed + 1), "label" if stratify else None, [fraction]) == 0
    column = features.split.column
    as_number = F.unix_timestamp(F.col(column).cast("timestamp")) if train.schema[column].dataType.typeName() in (
        "date", "timestamp") else F.col(column).cast("double")
    cut = train.select(as_number.alias("t")).approxQuantile("t", [1 - fraction], 0.001)[0]
    return as_number >= F.lit(cut)


def fold_column(train: DataFrame, folds: int, key: list[str], seed: int, stratify: bool = True) -> Column:
    """The cross-validation fold (0 .. folds-1) of each row, each fold keeping the class balance."""
    return _class_cuts(train, unit_hash(key, seed + 2), "label" if stratify else None,
                       [i / folds for i in range(1, folds)])
