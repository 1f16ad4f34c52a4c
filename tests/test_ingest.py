from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from lakeforge.config import ColumnSpec, SourceSpec
from lakeforge.errors import InputError
from lakeforge.ingest import BatchRejectedError, bronze_table, ingest_source, quarantine_table, silver_table
from tests.conftest import settings_for

READINGS = SourceSpec(
    name="readings", kind="csv", path="readings/", options={"header": "true"},
    columns=(
        ColumnSpec(name="id", type="int", nullable=False),
        ColumnSpec(name="ts", type="timestamp", nullable=False),
        ColumnSpec(name="value", type="double", check="value >= 0"),
        ColumnSpec(name="kind", type="string"),
    ),
    primary_key=("id",), event_time="ts",
)

FIRST_BATCH = """id,ts,value,kind
1,2024-01-01T00:00:00Z,1.5,a
2,2024-01-01T01:00:00Z,-3,b
x,2024-01-01T02:00:00Z,2.0,c
,2024-01-01T03:00:00Z,2.0,d
3,2024-01-01T04:00:00Z,abc,e
1,2024-01-01T05:00:00Z,9.0,a2
4,2024-01-01T06:00:00Z,,f
"""


@pytest.fixture
def settings(tmp_path):
    return settings_for(tmp_path, sources={"readings": READINGS})


def _write(settings, name: str, text: str) -> str:
    path = Path(settings.storage.landing) / "readings" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _silver(spark, settings) -> dict[int, tuple]:
    rows = spark.read.format("delta").load(silver_table(settings, "readings")).collect()
    return {r["id"]: (r["value"], r["kind"]) for r in rows}


def test_batch_lands_with_quarantine_reasons_and_latest_row_per_key(spark, settings):
    result = ingest_source(spark, settings, "readings", _write(settings, "b1.csv", FIRST_BATCH))

    assert (result.rows_read, result.quarantined, result.duplicates_dropped) == (7, 4, 1)
    assert (result.silver_inserted, result.silver_updated, result.silver_rows) == (2, 0, 2)
    assert _silver(spark, settings) == {1: (9.0, "a2"), 4: (None, "f")}
    reasons = sorted(r["reason"] for r in spark.read.format("delta").load(quarantine_table(settings, "readings")).collect())
    assert reasons == [
        "column 'id': cannot cast 'x' to int",
        "column 'id': null in a non-nullable column",
        "column 'value': cannot cast 'abc' to double",
        "column 'value': value '-3' violates check `value >= 0`",
        "duplicate key (id=1): a later row of the same key in this batch won",
    ]
    quarantined = spark.read.format("delta").load(quarantine_table(settings, "readings")).where("reason LIKE '%abc%'").first()
    assert quarantined["raw_record"] == '{"id":"3","ts":"2024-01-01T04:00:00Z","value":"abc","kind":"e"}'
    assert quarantined["_batch_id"] == result.batch_id
    bronze = spark.read.format("delta").load(bronze_table(settings, "readings"))
    assert bronze.count() == 7
    assert {"_ingested_at", "_source_file", "_batch_id"} <= set(bronze.columns)
    assert bronze.first()["_source_file"].endswith("/readings/b1.csv")


def test_rerunning_the_same_batch_changes_nothing(spark, settings):
    path = _write(settings, "b1.csv", FIRST_BATCH)
    first = ingest_source(spark, settings, "readings", path)
    versions = {layer: DeltaTable.forPath(spark, p).history(1).first()["version"]
                for layer, p in (("bronze", bronze_table(settings, "readings")),
                                 ("silver", silver_table(settings, "readings")),
                                 ("quarantine", quarantine_table(settings, "readings")))}
    again = ingest_source(spark, settings, "readings", path)

    assert again.batch_id == first.batch_id
    assert (again.bronze_appended, again.silver_merged) == (False, False)
    for layer, p in (("bronze", bronze_table(settings, "readings")), ("silver", silver_table(settings, "readings")),
                     ("quarantine", quarantine_table(settings, "readings"))):
        assert DeltaTable.forPath(spark, p).history(1).first()["version"] == versions[layer], layer
    assert spark.read.format("delta").load(bronze_table(settings, "readings")).count() == 7
    assert spark.read.format("delta").load(quarantine_table(settings, "readings")).count() == 5


def _versions(spark, settings) -> dict[str, int]:
    return {layer: DeltaTable.forPath(spark, p).history(1).first()["version"]
            for layer, p in (("bronze", bronze_table(settings, "readings")), ("silver", silver_table(settings, "readings")),
                             ("quarantine", quarantine_table(settings, "readings")))}


def test_a_touched_or_renamed_file_is_the_same_batch(spark, settings):
    import os

    path = _write(settings, "b1.csv", FIRST_BATCH)
    first = ingest_source(spark, settings, "readings", path)
    versions = _versions(spark, settings)
    later = os.stat(path).st_mtime + 3600
    os.utime(path, (later, later))                                  # touch: a new modification time, same bytes
    touched = ingest_source(spark, settings, "readings", path)
    copied = ingest_source(spark, settings, "readings", _write(settings, "b1-copy.csv", FIRST_BATCH))
    assert touched.batch_id == copied.batch_id == first.batch_id
    assert not (touched.bronze_appended or touched.silver_merged or copied.bronze_appended or copied.silver_merged)
    assert _versions(spark, settings) == versions
    assert spark.read.format("delta").load(bronze_table(settings, "readings")).count() == 7


def test_a_header_only_file_makes_no_silver_commit(spark, settings):
    ingest_source(spark, settings, "readings", _write(settings, "b1.csv", FIRST_BATCH))
    silver = DeltaTable.forPath(spark, silver_table(settings, "readings")).history(1).first()["version"]
    empty = ingest_source(spark, settings, "readings", _write(settings, "empty.csv", "id,ts,value,kind\n"))
    assert (empty.rows_read, empty.silver_merged, empty.silver_version) == (0, False, silver)
    assert DeltaTable.forPath(spark, silver_table(settings, "readings")).history(1).first()["version"] == silver


def test_newer_events_update_and_redelivered_old_rows_do_not(spark, settings):
    ingest_source(spark, settings, "readings", _write(settings, "b1.csv", FIRST_BATCH))
    second = _write(settings, "b2.csv", "id,ts,value,kind\n"
                    "1,2024-01-01T00:00:00Z,1.5,a\n"       # the old version of key 1, re-delivered
                    "4,2024-01-02T00:00:00Z,7.0,f2\n"      # newer event for key 4
                    "5,2024-01-02T00:00:00Z,5.0,g\n")      # new key
    result = ingest_source(spark, settings, "readings", second)

    assert (result.silver_inserted, result.silver_updated, result.quarantined) == (1, 1, 0)
    assert _silver(spark, settings) == {1: (9.0, "a2"), 4: (7.0, "f2"), 5: (5.0, "g")}


def test_silver_has_constraints_and_change_data_feed(spark, settings):
    ingest_source(spark, settings, "readings", _write(settings, "b1.csv", FIRST_BATCH))
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{silver_table(settings, 'readings')}`").first()
    assert detail["properties"]["delta.enableChangeDataFeed"] == "true"
    assert detail["properties"]["delta.constraints.value_check"] == "`value` IS NULL OR (value >= 0)"
    schema = {f.name: f.nullable for f in spark.read.format("delta").load(silver_table(settings, "readings")).schema}
    assert schema["id"] is False and schema["ts"] is False and schema["value"] is True
    bad = spark.read.format("delta").load(silver_table(settings, "readings")).limit(1).withColumn("value", F.lit(-1.0))
    with pytest.raises(Exception, match="DELTA_VIOLATE_CONSTRAINT_WITH_VALUES"):  # Delta itself enforces the rule
        bad.write.format("delta").mode("append").save(silver_table(settings, "readings"))


def test_file_missing_a_declared_column_is_rejected_whole(spark, settings):
    path = _write(settings, "bad.csv", "id,ts,kind\n1,2024-01-01T00:00:00Z,a\n")
    with pytest.raises(BatchRejectedError) as err:
        ingest_source(spark, settings, "readings", path)
    assert str(err.value) == (f"source 'readings': file://{path} lacks declared column(s) ['value']; found "
                              "['id', 'ts', 'kind']. Fix the file or the contract in conf/sources/readings.yaml")
    assert not DeltaTable.isDeltaTable(spark, bronze_table(settings, "readings"))


def test_wrong_delimiter_is_rejected_with_a_hint(spark, settings):
    path = _write(settings, "semi.csv", "id;ts;value;kind\n1;2024-01-01T00:00:00Z;1.0;a\n")
    with pytest.raises(BatchRejectedError, match=r"\(is the delimiter or header option right\?\)"):
        ingest_source(spark, settings, "readings", path)


def test_undeclared_column_is_rejected(spark, settings):
    path = _write(settings, "extra.csv", "id,ts,value,kind,color\n1,2024-01-01T00:00:00Z,1.0,a,red\n")
    with pytest.raises(BatchRejectedError) as err:
        ingest_source(spark, settings, "readings", path)
    assert str(err.value) == (f"source 'readings': file://{path} has column(s) ['color'] not in the contract; add "
                              "them to conf/sources/readings.yaml (or set schema_evolution: additive) or drop them "
                              "from the file")


def test_unknown_source_names_the_declared_ones(spark, settings):
    with pytest.raises(InputError) as err:
        ingest_source(spark, settings, "readingz")
    assert str(err.value) == ("unknown source 'readingz'; declared sources: readings "
                                 "(add conf/sources/readingz.yaml to declare it)")


def test_json_source_quarantines_malformed_records(spark, settings):
    source = READINGS.model_copy(update={"kind": "json", "options": {}})
    settings = settings.model_copy(update={"sources": {"readings": source}})
    path = _write(settings, "b.json", '{"id": 1, "ts": "2024-01-01T00:00:00Z", "value": 2.5, "kind": "a"}\n'
                                      '{"id": 2, "ts": "2024-01-01T00:00:00Z", "value": \n'
                                      '{"id": 3, "ts": "2024-01-01T00:00:00Z", "value": "x", "kind": "c"}\n')
    result = ingest_source(spark, settings, "readings", path)
    assert (result.rows_read, result.quarantined, result.silver_rows) == (3, 2, 1)
    reasons = sorted(r["reason"] for r in spark.read.format("delta").load(quarantine_table(settings, "readings")).collect())
    assert reasons[0] == "column 'value': cannot cast 'x' to double"
    assert reasons[1].startswith('malformed record: {"id": 2, "ts": "2024-01-01T00:00:00Z", "value": ')


def test_parquet_source_with_a_retyped_column_is_rejected(spark, settings):
    source = READINGS.model_copy(update={"kind": "parquet", "options": {}})
    settings = settings.model_copy(update={"sources": {"readings": source}})
    path = str(Path(settings.storage.landing) / "readings" / "typed")
    (spark.createDataFrame([(1, "2024-01-01 00:00:00", "1.5", "a")], "id int, ts string, value string, kind string")
     .withColumn("ts", F.col("ts").cast("timestamp")).write.parquet(path))
    with pytest.raises(BatchRejectedError) as err:
        ingest_source(spark, settings, "readings", path)
    assert "changed column type(s): value: declared double, found string" in str(err.value)


def test_invalid_bytes_date_only_timestamps_and_oversized_values_are_quarantined(spark, settings):
    """Nothing lands wrong without a word: bytes that are not UTF-8 are not replaced, a date is not a timestamp,
    and a value over the limit is not kept (nor quoted whole in its reason)."""
    limited = READINGS.model_copy(update={"columns": tuple(
        c.model_copy(update={"max_length": 10}) if c.name == "kind" else c for c in READINGS.columns)})
    settings = settings.model_copy(update={"sources": {"readings": limited}})
    path = Path(settings.storage.landing) / "readings" / "dirty.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"id,ts,value,kind\n"
                     b"1,2024-01-01T00:00:00Z,1.0,caf\xe9\n"          # latin-1 byte in a UTF-8 file
                     b"2,2024-01-01,2.0,b\n"                          # a date where a timestamp is declared
                     b"3,2024-01-01T02:00:00Z,3.0," + b"x" * 5000 + b"\n"   # longer than max_length 10
                     b"4,2024-01-01T03:00:00Z,4.0,ok\n"
                     b"5,2024-01-01T04:00:00Z,5.0,y," + b"z" * 100_000 + b"\n")  # malformed, and huge
    result = ingest_source(spark, settings, "readings", str(path))
    assert (result.rows_read, result.quarantined, result.silver_rows) == (5, 4, 1)
    quarantine = spark.read.format("delta").load(quarantine_table(settings, "readings"))
    reasons = sorted(r["reason"] for r in quarantine.collect())
    malformed = reasons.pop()
    assert malformed.startswith("malformed record: 5,2024-01-01T04:00:00Z,5.0,y,zzz") and len(malformed) < 300
    assert malformed.endswith("... [100029 characters in all]")
    assert max(len(r["raw_record"]) for r in quarantine.collect()) < 70_000
    assert reasons == [
        "column 'kind': a value of 5000 characters is longer than its limit of 10 (max_length)",
        "column 'kind': bytes that are not valid UTF-8 (the source's encoding); fix the producer or declare the "
        "file's encoding",
        "column 'ts': '2024-01-01' is a date without a time; a timestamp needs one (or set allow_date_only: true)",
    ]
    assert _silver(spark, settings) == {4: (4.0, "ok")}


def test_a_declared_encoding_reads_the_bytes_right(spark, settings):
    latin = READINGS.model_copy(update={"encoding": "ISO-8859-1"})
    settings = settings.model_copy(update={"sources": {"readings": latin}})
    path = Path(settings.storage.landing) / "readings" / "latin.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"id,ts,value,kind\n1,2024-01-01T00:00:00Z,1.0,caf\xe9\n")
    result = ingest_source(spark, settings, "readings", str(path))
    assert (result.quarantined, _silver(spark, settings)) == (0, {1: (1.0, "café")})
