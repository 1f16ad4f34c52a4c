"""Point-in-time (as-of) joins: each base row gets the latest joined row whose event time is at or before the base
row's own time and no further back than the lookback, or nulls; never a row from after its time.

The join is a union and a forward fill, not a range join: the joined rows and the base rows go into one frame,
partitioned by the keys and a time bucket as wide as the lookback, ordered by time (a joined row before a base row
at the same instant, and among joined rows of one instant the latest ``tie_break`` last); the last joined row seen
up to each base row is its match. A joined row is also copied into the next bucket, so a base row finds every
candidate within the lookback in its own partition; partitions stay small however few the keys are (three airports)
and nothing is compared pairwise. ``bench/asof.py`` measures it against the range join.
"""

from __future__ import annotations

from functools import reduce
from operator import and_

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

_TIME, _SIDE, _BUCKET, _TIE = "__asof_time", "__asof_side", "__asof_bucket", "__asof_tie"
_MATCH, _SEEN = "__asof_match", "__asof_seen"


def _micros(column: Column) -> Column:
    """A timestamp (or date) as microseconds since the epoch."""
    return F.unix_micros(column.cast("timestamp"))


def as_of_join(left: DataFrame, right: DataFrame, *, left_keys: list[str], right_keys: list[str], left_time: Column,
               right_time: str, lookback_seconds: int, select: dict[str, str],
               tie_break: str | None = None) -> DataFrame:
    """``left`` with the columns ``select`` names (right column -> output column) taken from the latest row of
    ``right`` with the same keys and ``right_time`` at or before ``left_time``, at most ``lookback_seconds`` before
    it; nulls where there is none. Among right rows of the same keys and time, the greatest ``tie_break`` wins
    (a correction ingested later). One output row per left row; left rows with a null key or time get nulls."""
    if lookback_seconds <= 0:
        raise ValueError(f"lookback_seconds must be positive, got {lookback_seconds}")
    width = lookback_seconds * 1_000_000
    payload = [F.col(f"`{src}`").alias(dst) for src, dst in select.items()]
    keys = [F.col(f"`{k}`").alias(left_k) for k, left_k in zip(right_keys, left_keys)]
    known = reduce(and_, [F.col(f"`{c}`").isNotNull() for c in (right_time, *right_keys)])
    rows = right.where(known).withColumn(_TIME, _micros(F.col(f"`{right_time}`")))
    # each joined row in its own bucket and the next one: a base row's candidates are all in its bucket
    bucket = F.floor(F.col(_TIME) / width)
    tie = F.col(f"`{tie_break}`") if tie_break else F.lit(None)
    candidates = rows.select(*keys, _TIME, tie.alias(_TIE), F.struct(_TIME, *payload).alias(_MATCH),
                             F.explode(F.array(bucket, bucket + 1)).alias(_BUCKET), F.lit(0).alias(_SIDE))
    base = (left.withColumn(_TIME, _micros(left_time)).withColumn(_BUCKET, bucket)
            .withColumn(_SIDE, F.lit(1)).withColumn(_TIE, F.lit(None)))
    union = base.unionByName(candidates, allowMissingColumns=True)
    window = (Window.partitionBy(*[F.col(f"`{k}`") for k in left_keys], F.col(_BUCKET))
              .orderBy(F.col(_TIME), F.col(_SIDE), F.col(_TIE).asc_nulls_first())
              .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    filled = union.withColumn(_SEEN, F.last(F.col(_MATCH), ignorenulls=True).over(window)).where(F.col(_SIDE) == 1)
    fresh = F.col(f"{_SEEN}.{_TIME}") >= F.col(_TIME) - width
    return filled.select(*[F.col(f"`{c}`") for c in left.columns],
                         *[F.when(fresh, F.col(_SEEN)[dst]).alias(dst) for dst in select.values()])


def range_join(left: DataFrame, right: DataFrame, *, left_keys: list[str], right_keys: list[str], left_time: Column,
               right_time: str, lookback_seconds: int, select: dict[str, str],
               tie_break: str | None = None) -> DataFrame:
    """The same answer as ``as_of_join`` by the naive route, a left join on the keys with a time-range condition
    and the latest match kept per base row: the baseline of ``bench/asof.py`` and a reference in the tests."""
    width = lookback_seconds * 1_000_000
    base = left.withColumn(_TIME, _micros(left_time)).withColumn("__asof_row", F.monotonically_increasing_id())
    r = right.select(*[F.col(f"`{k}`").alias(f"__r_{k}") for k in right_keys],
                     _micros(F.col(f"`{right_time}`")).alias("__r_time"),
                     (F.col(f"`{tie_break}`") if tie_break else F.lit(None)).alias("__r_tie"),
                     *[F.col(f"`{src}`").alias(f"__r_{dst}") for src, dst in select.items()])
    on = [base[f"`{lk}`"] == r[f"__r_{rk}"] for lk, rk in zip(left_keys, right_keys)]
    on += [r["__r_time"] <= base[_TIME], r["__r_time"] >= base[_TIME] - width]
    joined = base.join(r, on=on, how="left")
    rank = Window.partitionBy("__asof_row").orderBy(F.col("__r_time").desc_nulls_last(),
                                                    F.col("__r_tie").desc_nulls_last())
    best = joined.withColumn("__asof_rank", F.row_number().over(rank)).where(F.col("__asof_rank") == 1)
    return best.select(*[F.col(f"`{c}`") for c in left.columns],
                       *[F.col(f"__r_{dst}").alias(dst) for dst in select.values()])
