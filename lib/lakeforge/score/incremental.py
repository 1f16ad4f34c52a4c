"""Incremental scoring input: the rows of a Delta table changed since the version last scored, read through
its Change Data Feed (the newest change per key: inserts and update post-images; a deleted key is skipped).

The gold table is MERGEd by entity key (``features.build_gold_table``), so its feed holds only the rows that
really changed; ranking is total (commit version, then an insert before a delete of the same commit), so the
same range always gives the same rows."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.utils import AnalysisException

from lakeforge.errors import ChangeDataFeedError
from lakeforge.tables import Table

CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


def cdf_enabled(spark: SparkSession, path: str) -> bool:
    properties = spark.sql(f"DESCRIBE DETAIL {Table.of(path).sql}").first()["properties"] or {}
    return properties.get("delta.enableChangeDataFeed", "false").lower() == "true"


def changed_rows(spark: SparkSession, path: str, after_version: int, through_version: int,
                 key: list[str]) -> DataFrame:
    """Rows inserted or updated in versions ``after_version + 1 .. through_version``, one per key (the newest)."""
    if not cdf_enabled(spark, path):
        raise ChangeDataFeedError(
            f"--incremental needs the Change Data Feed of {path}, which is off; enable it with "
            f"ALTER TABLE {Table.of(path).sql} SET TBLPROPERTIES (delta.enableChangeDataFeed = true) and score the table "
            "once in full (without --incremental)")
    try:
        changes = Table.of(path).load(spark.read.option("readChangeFeed", "true")
                                      .option("startingVersion", after_version + 1)
                                      .option("endingVersion", through_version))
        changes.schema  # noqa: B018 - resolves the read, raising here when the versions have no change data
    except AnalysisException as exc:
        raise ChangeDataFeedError(
            f"cannot read the Change Data Feed of {path} from version {after_version + 1} to {through_version} "
            f"({str(exc).splitlines()[0]}); the feed may have been enabled after version {after_version} or vacuumed; "
            "score the table once in full (without --incremental)") from None
    # The newest change per key decides: a key inserted and then deleted in the range is not scored. Within one
    # commit a key can have a delete and an insert (a table rewritten in full): the delete removed the old row and
    # the insert is what the table holds afterwards, so the insert (or update post-image) ranks first.
    after_delete = F.when(F.col("_change_type") == "delete", F.lit(1)).otherwise(F.lit(0))
    newest = Window.partitionBy(*[F.col(f"`{k}`") for k in key]).orderBy(F.col("_commit_version").desc(), after_delete)
    return (changes.where(F.col("_change_type") != "update_preimage")
            .withColumn("_rank", F.row_number().over(newest))
            .where((F.col("_rank") == 1) & (F.col("_change_type") != "delete"))
            .drop("_rank", *CDF_COLUMNS))
