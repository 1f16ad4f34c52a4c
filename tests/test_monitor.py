import math
import random

import pytest

from lakeforge.monitor import EPSILON, feature_drift, population_stability_index


def test_psi_of_identical_distributions_is_zero():
    assert population_stability_index({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0


def test_psi_matches_the_formula():
    expected, actual = {"a": 0.6, "b": 0.4}, {"a": 0.3, "b": 0.7}
    by_hand = (0.3 - 0.6) * math.log(0.3 / 0.6) + (0.7 - 0.4) * math.log(0.7 / 0.4)
    assert population_stability_index(expected, actual) == pytest.approx(by_hand)


def test_psi_floors_empty_bins():
    value = population_stability_index({"a": 1.0}, {"b": 1.0})
    assert value == pytest.approx(2 * (1.0 - EPSILON) * math.log(1.0 / EPSILON))


def test_only_the_shifted_features_drift(spark):
    rng = random.Random(7)
    schema = "temp double, distance double, carrier string, origin string"

    def rows(n, temp_mean, carriers):
        return [(rng.gauss(temp_mean, 10), rng.uniform(100, 2500), rng.choice(carriers), rng.choice(["EWR", "JFK", "LGA"]))
                for _ in range(n)]

    baseline = spark.createDataFrame(rows(4000, 60.0, ["UA", "AA", "DL", "B6"]), schema)
    steady = spark.createDataFrame(rows(4000, 60.0, ["UA", "AA", "DL", "B6"]), schema)
    shifted = spark.createDataFrame(rows(4000, 30.0, ["UA", "UA", "UA", "WN"]), schema)

    same = feature_drift(baseline, steady, ["carrier", "origin"], ["temp", "distance"], bins=10)
    moved = feature_drift(baseline, shifted, ["carrier", "origin"], ["temp", "distance"], bins=10)

    assert max(same.values()) < 0.05
    assert moved["temp"] > 0.25 and moved["carrier"] > 0.25
    assert moved["distance"] < 0.05 and moved["origin"] < 0.05


def test_null_share_changes_count_as_drift(spark):
    schema = "x double"
    baseline = spark.createDataFrame([(float(i),) for i in range(1000)], schema)
    with_nulls = spark.createDataFrame([(float(i) if i % 2 else None,) for i in range(1000)], schema)
    assert feature_drift(baseline, with_nulls, [], ["x"], bins=5)["x"] > 0.25
