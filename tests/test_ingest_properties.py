"""Property-based tests of enforcement and dedup: whatever the batch, every row read ends up in exactly one
place (kept in silver, quarantined for the contract, or quarantined as a superseded duplicate)."""

import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from lakeforge.config import ColumnSpec, SourceSpec
from lakeforge.ingest import dq_metrics_table, ingest_source, quarantine_table, silver_table
from lakeforge.ingest.enforce import enforce, valid_rows
from tests.conftest import settings_for

SOURCE = SourceSpec(
    name="events", kind="csv", path="events/", options={"header": "true"},
    columns=(ColumnSpec(name="id", type="int", nullable=False),
             ColumnSpec(name="ts", type="int", nullable=False),
             ColumnSpec(name="amount", type="double", check="amount >= 0")),
    primary_key=("id",), event_time="ts",
)

ids = st.one_of(st.integers(0, 6).map(str), st.sampled_from(["", "x", "1.5"]))
amounts = st.one_of(st.floats(-5, 100, allow_nan=False).map(lambda f: f"{f:.2f}"), st.sampled_from(["", "abc"]))
rows = st.lists(st.tuples(ids, st.integers(0, 3).map(str), amounts), min_size=1, max_size=25)
counter = itertools.count()


COLUMNS = (("id", int), ("ts", int), ("amount", float))


def _typed(row):
    """The row's values as the contract casts them: None for an empty field (the CSV's null) or one that does not
    cast."""
    def cast(value, kind):
        try:
            return kind(value)
        except ValueError:
            return None

    return tuple(cast(value, kind) for value, (_, kind) in zip(row, COLUMNS))


def _expected(batch):
    """What the contract says should happen, computed independently of Spark: (rows rejected, the valid rows typed)."""
    def valid(row, typed):
        key, ts, amount = typed
        cast = amount is not None or row[2] == ""
        return key is not None and ts is not None and cast and (amount is None or amount >= 0)

    good = [typed for row, typed in ((r, _typed(r)) for r in batch) if valid(row, typed)]
    return len(batch) - len(good), good


def _null_rates(batch):
    """The share of rows whose value is null once cast to the contract's type, per column."""
    return {name: sum(_typed(r)[i] is None for r in batch) / len(batch) for i, (name, _) in enumerate(COLUMNS)}


@hsettings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=rows)
def test_every_row_lands_in_exactly_one_place(spark, tmp_path, batch):
    root = tmp_path / f"case{next(counter)}"
    settings = settings_for(root, sources={"events": SOURCE})
    path = Path(settings.storage.landing) / "events" / "batch.csv"
    path.parent.mkdir(parents=True)
    path.write_text("id,ts,amount\n" + "".join(f"{a},{b},{c}\n" for a, b, c in batch))

    result = ingest_source(spark, settings, "events", str(path))
    bad, good = _expected(batch)
    unique_keys = len({key for key, _, _ in good})

    silver = spark.read.format("delta").load(silver_table(settings, "events"))
    quarantined = result.quarantined + result.duplicates_dropped
    assert result.rows_read == len(batch)
    assert result.quarantined == bad
    assert silver.count() == unique_keys == result.silver_rows
    assert result.rows_read == silver.count() + quarantined          # none lost, none counted twice
    if quarantined:
        q = spark.read.format("delta").load(quarantine_table(settings, "events"))
        assert q.count() == quarantined
        assert q.where("reason_kind = 'contract'").count() == result.quarantined
    # no row is both kept and quarantined: every kept key holds its batch's winning event
    winners = {}
    for key, ts, _ in good:
        winners.setdefault(key, []).append(ts)
    assert {r["id"]: r["ts"] for r in silver.collect()} == {k: max(v) for k, v in winners.items()}
    # the data-quality metrics: each column's null rate once cast (a value that does not cast counts as null)
    metrics = {(r["metric"], r["column"]): r["value"]
               for r in spark.read.format("delta").load(dq_metrics_table(settings)).collect()}
    assert {c: metrics[("null_rate", c)] for c in ("id", "ts", "amount")} == _null_rates(batch)
    assert metrics[("rows_duplicate", None)] == result.duplicates_dropped == len(batch) - bad - unique_keys


def test_rows_counted_valid_are_cast_without_evaluating_the_rules_again(spark):
    """``valid_rows(all_valid=True)`` (the batch counted no rejected row) only casts: no filter is planned, so a
    row that would break a rule passes; by default the rules filter."""
    raw = spark.createDataFrame([("1", "2", "-3.0"), ("2", "x", "4.5"), ("3", "1", "2.0")],
                                "id string, ts string, amount string")
    enforced = enforce(raw, SOURCE)
    assert [r["id"] for r in valid_rows(enforced, SOURCE).collect()] == [3]
    cast = valid_rows(enforced, SOURCE, all_valid=True)
    assert [tuple(r) for r in cast.orderBy("id").collect()] == [(1, 2, -3.0), (2, None, 4.5), (3, 1, 2.0)]
    assert "Filter" not in cast._jdf.queryExecution().optimizedPlan().toString()
    assert "Filter" in valid_rows(enforced, SOURCE)._jdf.queryExecution().optimizedPlan().toString()
