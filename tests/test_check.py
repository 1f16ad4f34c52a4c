"""The configuration checked against the real schemas before any job (lakeforge.check): every problem at once,
each naming the file, the key path, the column, what was found and what was expected."""

from __future__ import annotations

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from lakeforge.check import check_configuration
from lakeforge.config import ConfigError, JoinSpec
from lakeforge.ingest import silver_table
from tests.conftest import settings_for

HEAD = "the configuration of environment 'local' names what its tables do not have"


def _problems(spark, settings) -> list[str]:
    with pytest.raises(ConfigError) as err:
        check_configuration(spark, settings)
    first, *lines = str(err.value).splitlines()
    assert first == f"{HEAD} ({len(lines)} problem(s)):"
    return [line.strip() for line in lines]


def _with(settings, **sections):
    return settings.model_copy(update={name: getattr(settings, name).model_copy(update=values)
                                       for name, values in sections.items()})


def test_the_demo_configuration_passes_before_anything_is_ingested(spark, tmp_path):
    result = check_configuration(spark, settings_for(tmp_path))
    assert result.silver == {name: "its contract (not ingested yet)"
                             for name in ("flights", "weather", "planes", "airports", "airlines")}
    assert result.gold_columns["flight_date"] == "date" and result.gold_columns["is_delayed"] == "int"
    assert result.gold_columns["plane_age"] == "int" and result.window_column == "flight_date"
    assert result.labels == "the gold table"


def test_misnamed_and_mistyped_feature_columns_are_all_named(spark, tmp_path):
    settings = settings_for(tmp_path)
    numeric = tuple("tmep" if c == "temp" else c for c in settings.features.numeric) + ("carrier_code",)
    bad = _with(settings, features={"numeric": numeric, "categorical": ("carrier", "origin", "dest"),
                                    "label": "arr_delay_class"})
    bad = _with(bad, features={"numeric": (*numeric[:-1], "tailnum")})
    problems = _problems(spark, bad)
    assert problems[0].startswith("conf/base.yaml: features.numeric[10]: column 'tmep' is not in the gold table "
                                  "(the declared joins and derived columns); did you mean 'temp'? (its columns: ")
    assert problems[0].endswith("); declare it under features.derived or a join's select")
    assert problems[1] == ("conf/base.yaml: features.numeric[19]: column 'tailnum' of the gold table (the declared "
                           "joins and derived columns) is string; expected a number (int, bigint, float, double, "
                           "decimal) or boolean; list it under features.categorical, or cast it in features.derived")
    assert problems[2].startswith("conf/base.yaml: features.label: column 'arr_delay_class' is not in the gold table")
    assert len(problems) == 3


def test_joins_and_derived_expressions_are_resolved_without_a_job(spark, tmp_path):
    settings = settings_for(tmp_path)
    joins = list(settings.features.joins)
    joins[1] = JoinSpec(source="planes", keys=("tailnum",), select={"yeer": "plane_year", "type": "plane_type",
                                                                     "manufacturer": "plane_manufacturer"})
    derived = {**settings.features.derived, "wind_chill": "temp - 0.7 * windspeed"}
    problems = _problems(spark, _with(settings, features={"joins": tuple(joins), "derived": derived}))
    assert problems[0].startswith("conf/base.yaml: features.joins[1].select.yeer: column 'yeer' is not in silver "
                                  "table 'planes' (its contract (not ingested yet)); did you mean 'year'?")
    # the join that failed is left out, so what needs its columns fails too, each with Spark's own words
    assert problems[1].startswith("conf/base.yaml: features.derived.plane_age: 'year - plane_year' does not resolve "
                                  "over the columns before it: [UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, "
                                  "or function parameter with name `plane_year` cannot be resolved.")
    assert problems[2].startswith("conf/base.yaml: features.derived.wind_chill: 'temp - 0.7 * windspeed' does not "
                                  "resolve over the columns before it: [UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, "
                                  "variable, or function parameter with name `windspeed` cannot be resolved.")
    assert [p.split(":")[1].strip() for p in problems[3:]] == [
        "features.categorical[3]", "features.categorical[4]", "features.categorical[5]",
        "features.numeric[7]", "features.numeric[8]", "features.numeric[9]"]  # plane_* columns never made it


def test_split_weights_and_monitoring_columns_are_checked(spark, tmp_path):
    settings = settings_for(tmp_path)
    bad = _with(settings, features={"split": settings.features.split.model_copy(update={"test_from": "Nov 2013"})},
                model={"weight_col": "weight"})
    perf = bad.monitor.performance.model_copy(update={"window_column": "distance", "label": "delayed"})
    bad = _with(bad, monitor={"performance": perf, "feature_thresholds": {"precipitation": {}}})
    problems = _problems(spark, bad)
    assert problems == [
        "conf/base.yaml: features.split.test_from: 'Nov 2013' is not a value of column 'flight_date' (date); give one, "
        "e.g. 2024-01-01",
        problems[1],
        problems[2],
        "conf/base.yaml: monitor.performance.label: column 'delayed' is not in the gold table; did you mean "
        f"'is_delayed'? (its columns: {problems[3].split('(its columns: ')[1]}",
        "conf/base.yaml: monitor.performance.window_column: column 'distance' of the gold table is double; "
        "expected a date or timestamp column; or set monitor.performance.window: none (overall figures only)",
    ]
    assert problems[1].startswith("conf/base.yaml: model.weight_col: column 'weight' is not in the gold table")
    assert problems[2].startswith("conf/base.yaml: monitor.feature_thresholds: ['precipitation'] are not features")


def test_a_labels_table_of_its_own_is_read_for_its_schema(spark, tmp_path):
    settings = settings_for(tmp_path)
    labels = str(tmp_path / "labels")
    spark.createDataFrame([(2013, 1, 1, "UA", 1545, "EWR", 1, "2013-01-01")],
                          "year int, month int, day int, carrier string, flight int, origin string, late int, "
                          "seen string").write.format("delta").save(labels)
    perf = settings.monitor.performance.model_copy(update={"labels_table": labels, "label": "late"})
    result = check_configuration(spark, _with(settings, monitor={"performance": perf}))
    # no flight_date there: the default windows (the split column) do not apply, overall figures only
    assert result.labels == f"labels table {labels}" and result.window_column is None
    problems = _problems(spark, _with(settings, monitor={"performance": perf.model_copy(update={
        "window_column": "seen", "label": "lateness"})}))
    assert problems[0].startswith(f"conf/base.yaml: monitor.performance.label: column 'lateness' is not in "
                                  f"labels table {labels}; did you mean 'late'?")
    assert problems[1] == (f"conf/base.yaml: monitor.performance.window_column: column 'seen' of labels table "
                           f"{labels} is string; expected a date or timestamp column; or set "
                           "monitor.performance.window: none (overall figures only)")
    missing = str(tmp_path / "nowhere")
    assert _problems(spark, _with(settings, monitor={"performance": perf.model_copy(update={"labels_table": missing})})) == [
        f"conf/base.yaml: monitor.performance.labels_table: no Delta table at {missing}; point it at a table "
        "with the entity key, the label and the window column, or remove it to use the gold table"]


def test_an_ingested_silver_table_is_read_for_its_real_schema(spark, tmp_path):
    settings = settings_for(tmp_path)
    path = silver_table(settings, "airlines")
    spark.createDataFrame([("UA", "United Air Lines Inc.", "Chicago")], "carrier string, name string, hq string") \
        .write.format("delta").save(path)
    joins = tuple(j.model_copy(update={"select": {**j.select, "hq": "airline_hq"}}) if j.source == "airlines" else j
                  for j in settings.features.joins)
    result = check_configuration(spark, _with(settings, features={"joins": joins}))
    assert result.silver["airlines"] == f"table {path} (version 0)"
    assert result.gold_columns["airline_hq"] == "string"
    assert DeltaTable.forPath(spark, path).history().count() == 1  # read, never written
    assert spark.read.format("delta").load(path).where(F.col("hq") == "Chicago").count() == 1
