"""Splits of the gold rows: the holdout (by time, or a seeded stratified random share), the validation rows
inside the training split (trials of a search, early stopping), and the folds of k-fold cross-validation.

Random splits hash the entity key with the seed (``lakeforge.holdout``): the same data version and seed give the
same split on a laptop and a cluster. Stratification cuts each class at its own quantile of that hash, so every
side keeps the class balance. The holdout split comes with its spec, which training logs so that monitoring can
tell the rows a model was fitted on.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeforge.config import FeatureSettings
from lakeforge.holdout import class_cuts, cuts_passed, in_training, stratified_spec, time_spec, unit_hash

__all__ = ["fold_column", "holdout_split", "stratified_split", "time_split", "unit_hash", "validation_flag"]


def time_split(frame: DataFrame, features: FeatureSettings) -> tuple[DataFrame, DataFrame]:
    """Rows before ``features.split.test_from`` (training) and from it on (holdout)."""
    trained = in_training(time_spec(features.split.column, features.split.test_from), frame)
    return frame.where(trained), frame.where(~trained)


def _strata(strata: str | None) -> Column | None:
    return None if strata is None else F.col(f"`{strata}`")


def _stratified(frame: DataFrame, key: list[str], strata: str | None, fraction: float, seed: int
                ) -> tuple[DataFrame, DataFrame, list[tuple[Any, list[float]]]]:
    hashed = unit_hash(key, seed)
    cuts = class_cuts(frame, hashed, _strata(strata), [fraction])
    held_out = cuts_passed(cuts, _strata(strata), hashed) == 0
    return frame.where(~held_out), frame.where(held_out), cuts


def stratified_split(frame: DataFrame, key: list[str], strata: str | None, fraction: float,
                     seed: int) -> tuple[DataFrame, DataFrame]:
    """(rest, share): ``share`` holds ``fraction`` of each class of ``strata`` (of all rows when None)."""
    rest, share, _ = _stratified(frame, key, strata, fraction, seed)
    return rest, share


def holdout_split(frame: DataFrame, features: FeatureSettings, key: list[str], seed: int,
                  stratify: bool = True) -> tuple[DataFrame, DataFrame, dict[str, Any]]:
    """(train, holdout, spec) as ``features.split`` declares; ``frame`` carries ``label`` (``with_label``), and
    ``spec`` (``lakeforge.holdout``) finds the training side again on the gold table."""
    split = features.split
    if split.kind == "time":
        train, test = time_split(frame, features)
        return train, test, time_spec(split.column, split.test_from)
    train, test, cuts = _stratified(frame, key, "label" if stratify else None, split.test_fraction, seed)
    return train, test, stratified_spec(key, seed, features.label if stratify else None, cuts)


def validation_flag(train: DataFrame, features: FeatureSettings, fraction: float, key: list[str], seed: int,
                    stratify: bool = True) -> Column:
    """True on the rows of ``train`` that validate (search trials, early stopping): the latest ``fraction`` of
    the training period for a time split, a stratified seeded share otherwise."""
    if features.split.kind == "stratified":
        hashed = unit_hash(key, seed + 1)
        strata = _strata("label" if stratify else None)
        return cuts_passed(class_cuts(train, hashed, strata, [fraction]), strata, hashed) == 0
    column = features.split.column
    as_number = F.unix_timestamp(F.col(column).cast("timestamp")) if train.schema[column].dataType.typeName() in (
        "date", "timestamp") else F.col(column).cast("double")
    cut = train.select(as_number.alias("t")).approxQuantile("t", [1 - fraction], 0.001)[0]
    return as_number >= F.lit(cut)


def fold_column(train: DataFrame, folds: int, key: list[str], seed: int, stratify: bool = True) -> Column:
    """The cross-validation fold (0 .. folds-1) of each row, each fold keeping the class balance."""
    hashed = unit_hash(key, seed + 2)
    strata = _strata("label" if stratify else None)
    return cuts_passed(class_cuts(train, hashed, strata, [i / folds for i in range(1, folds)]), strata, hashed)
