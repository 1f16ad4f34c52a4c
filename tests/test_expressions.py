"""The Spark-free evaluator of ``features.derived`` (``lakeforge.models.expressions``) against Spark itself: every
supported construct, on seeded rows with nulls, edge values and impossible dates, gives Spark's values."""

from __future__ import annotations

import datetime as dt
import math

import pyarrow as pa
import pytest

from lakeforge.models.expressions import UnsupportedExpressionError, compile_expression, java_double

SCHEMA = "a int, b int, x double, y double, s string, d date, flag boolean"
ROWS = [
    (2013, 1, 1.5, 2.0, "UA", dt.date(2013, 1, 1), True),
    (2013, 2, -2.5, 0.0, "aa-x", dt.date(2013, 2, 28), False),
    (None, 3, None, -4.0, None, None, None),
    (1999, 13, 7.25, None, "  dl  ", dt.date(2000, 2, 29), True),
    (-7, 0, 0.5, 3.5, "", dt.date(1970, 1, 1), False),
    (2024, 2, 1e-5, 1e8, "Ab", dt.date(2024, 12, 31), None),
]
EXPRESSIONS = [
    "a + b", "a - b * 2", "x * y", "-a", "a / b", "x / y", "a % 7", "-a % 7", "x % 2", "a div 3", "b div 0",
    "floor(x)", "ceil(x)", "floor(a / 100)", "floor(a / 100) * 60 + a % 100", "round(x, 1)", "round(x)",
    "abs(x)", "sqrt(y)", "exp(b)", "ln(y)", "log10(y)", "log2(y)", "log(2, y)", "pow(x, 2)", "signum(x)",
    "a = 2013", "a <> b", "x < y", "x >= y", "a <=> b", "a > 0 AND flag", "a > 0 OR flag", "NOT flag",
    "a IS NULL", "s IS NOT NULL", "isnull(x)", "isnotnull(s)", "b IN (1, 3)", "x BETWEEN 0 AND 2", "s LIKE 'A%'",
    "lower(s) LIKE '%x'", "CASE WHEN a IS NULL THEN -1 WHEN x > 1 THEN 1 ELSE 0 END", "CASE WHEN flag THEN x END",
    "if(x > 1, 'big', 'small')", "if(flag, a, x)", "coalesce(x, y, 0)", "nvl(s, 'none')", "ifnull(a, b)",
    "nullif(b, 2)", "greatest(x, y)", "least(a, b, 5)", "upper(s)", "lower(s)", "length(s)", "trim(s)",
    "concat(s, '-', b)", "concat(s, x)", "substring(s, 2)", "substring(s, 1, 2)", "substring(s, -2, 1)",
    "CAST(x AS INT)", "CAST(flag AS INT)", "CAST(x > 1 AS INT)", "CAST(a AS DOUBLE)", "CAST(a AS STRING)",
    "CAST(x AS STRING)", "CAST(y AS STRING)", "CAST(s AS INT)", "CAST(b AS BOOLEAN)", "CAST('2013-05-06' AS DATE)",
    "make_date(a, b, 1)", "make_date(2013, 2, 29)", "dayofweek(make_date(a, b, 1))", "dayofweek(d)", "year(d)",
    "month(d)", "day(d)", "dayofmonth(d)", "dayofyear(d)", "quarter(d)", "weekofyear(d)", "date_add(d, 3)",
    "datediff(d, make_date(2013, 1, 1))", "to_date('2013-01-05')", "d + 1", "TRUE", "NULL",
]


def _arrow_columns(spark):
    frame = spark.createDataFrame(ROWS, SCHEMA)
    table = pa.Table.from_pylist([r.asDict() for r in frame.collect()], schema=pa.schema([
        ("a", pa.int32()), ("b", pa.int32()), ("x", pa.float64()), ("y", pa.float64()), ("s", pa.string()),
        ("d", pa.date32()), ("flag", pa.bool_())]))
    return frame, {name: table.column(name).combine_chunks() for name in table.column_names}


def _same(mine, theirs) -> bool:
    if mine is None or theirs is None:
        return mine is None and theirs is None
    if isinstance(theirs, float) or isinstance(mine, float):
        return (math.isnan(mine) and math.isnan(theirs)) or mine == pytest.approx(theirs, rel=1e-12, abs=1e-12)
    return mine == theirs


def test_every_supported_expression_gives_sparks_values(spark):
    frame, columns = _arrow_columns(spark)
    with_legacy = {"spark.sql.ansi.enabled": "false"}  # a null, not an error, for make_date(2013, 13, 1) and x / 0
    previous = {k: spark.conf.get(k, None) for k in with_legacy}
    for key, value in with_legacy.items():
        spark.conf.set(key, value)
    try:
        expected = frame.selectExpr(*[f"{e} AS e{i}" for i, e in enumerate(EXPRESSIONS)]).collect()
    finally:
        for key, value in previous.items():
            spark.conf.unset(key) if value is None else spark.conf.set(key, value)
    wrong = []
    for i, text in enumerate(EXPRESSIONS):
        mine = compile_expression(text).evaluate(columns, len(ROWS)).to_pylist()
        theirs = [row[f"e{i}"] for row in expected]
        if not all(_same(m, t) for m, t in zip(mine, theirs)):
            wrong.append(f"{text}: {mine} != Spark's {theirs}")
    assert wrong == []


def test_doubles_are_written_as_java_writes_them():
    assert [java_double(v) for v in (1.0, 1e7, 1.5e-4, 123456.789, -2.5e10, 1e21, 0.001, -0.0, float("nan"))] == [
        "1.0", "1.0E7", "1.5E-4", "123456.789", "-2.5E10", "1.0E21", "0.001", "-0.0", "NaN"]


def test_what_cannot_be_evaluated_without_spark_is_refused_by_name():
    with pytest.raises(UnsupportedExpressionError) as err:
        compile_expression("rand() * a")
    assert str(err.value).startswith("'rand' in 'rand() * a' is not supported without Spark (supported: %, *, +, ")
    with pytest.raises(UnsupportedExpressionError) as err:
        compile_expression("sha2(s, 256)")
    assert "'sha2' in 'sha2(s, 256)' is not supported without Spark" in str(err.value)
    with pytest.raises(UnsupportedExpressionError) as err:
        compile_expression("a +")
    assert str(err.value).startswith("cannot parse 'a +': ")
    assert set(compile_expression("floor(sched_dep_time / 100) * 60 + `sched dep` % 100").columns) == {
        "sched_dep_time", "sched dep"}
