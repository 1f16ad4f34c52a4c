"""The null rates of a batch read from the Parquet footers of its bronze files (``footer_null_rates``): exact when
the files hold exactly the batch's rows, and no answer (the caller counts) whenever they might not."""

from pyspark.sql import functions as F

from lakeforge.ingest.quality import ROWS, footer_counts, footer_null_rates, footer_read_conf
from lakeforge.spark import session_conf

SCHEMA = "id string, a string, b string, _batch_id string"
B1 = [(str(i), None if i % 4 == 0 else "x", None if i % 5 == 0 else "y", "b1") for i in range(40)]
B2 = [(str(i), None if i % 2 == 0 else "x", "y", "b2") for i in range(30)]


def _append(spark, path, rows, files=1):
    spark.createDataFrame(rows, SCHEMA).repartition(files).write.format("delta").mode("append").save(str(path))


def _batch(spark, path, batch_id):
    return spark.read.format("delta").load(str(path)).where(F.col("_batch_id") == batch_id)


def test_the_rates_of_a_batch_come_from_its_own_files_only(spark, tmp_path):
    _append(spark, tmp_path / "t", B1, files=2)
    _append(spark, tmp_path / "t", B2, files=3)
    assert footer_null_rates(_batch(spark, tmp_path / "t", "b1"), ["a", "b"], 40) == {"a": 10 / 40, "b": 8 / 40}
    assert footer_null_rates(_batch(spark, tmp_path / "t", "b2"), ["a", "b"], 30) == {"a": 15 / 30, "b": 0.0}
    # Counts that do not add up to the caller's rows are not the batch's.
    assert footer_null_rates(_batch(spark, tmp_path / "t", "b2"), ["a", "b"], 29) is None
    assert footer_null_rates(_batch(spark, tmp_path / "t", "b3"), ["a", "b"], 0) is None


def test_the_counts_are_pushed_down_to_the_footers_and_no_value_is_read(spark, tmp_path):
    """Were the aggregates not pushed down (a Spark upgrade, a changed setting), the rates would still be right, only
    read from every value: the plan must answer them from the footers."""
    _append(spark, tmp_path / "t", B1, files=2)
    files = _batch(spark, tmp_path / "t", "b1").inputFiles()
    with session_conf(spark, footer_read_conf(spark)):
        counts = footer_counts(spark, files, ["a", "b"])
        plan = counts._jdf.queryExecution().executedPlan().toString()
        assert counts.first().asDict() == {ROWS: 40, "a": 30, "b": 32}
    assert "PushedAggregation: [COUNT(*), COUNT(a), COUNT(b)]" in plan, plan
    # The session's own settings are back: Parquet through the V1 reader, no push-down.
    assert spark.conf.get("spark.sql.parquet.aggregatePushdown") == "false"
    assert "parquet" in spark.conf.get("spark.sql.sources.useV1SourceList")


def test_files_that_also_hold_another_batch_give_no_rates(spark, tmp_path):
    _append(spark, tmp_path / "t", B1 + B2, files=1)
    assert footer_null_rates(_batch(spark, tmp_path / "t", "b1"), ["a", "b"], 40) is None


def test_rows_hidden_by_a_deletion_vector_give_no_rates(spark, tmp_path):
    path = tmp_path / "t"
    spark.sql(f"CREATE TABLE delta.`{path}` ({SCHEMA}) USING delta "
              "TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    _append(spark, path, B1)
    spark.sql(f"DELETE FROM delta.`{path}` WHERE id = '3'")
    assert spark.sql(f"SELECT count(*) FROM delta.`{path}`").first()[0] == 39
    assert footer_null_rates(_batch(spark, path, "b1"), ["a", "b"], 39) is None


def test_columns_stored_under_other_physical_names_give_no_rates(spark, tmp_path):
    path = tmp_path / "t"
    spark.sql(f"CREATE TABLE delta.`{path}` ({SCHEMA}) USING delta TBLPROPERTIES ('delta.columnMapping.mode' = "
              "'name', 'delta.minReaderVersion' = '2', 'delta.minWriterVersion' = '5')")
    _append(spark, path, B1)
    assert footer_null_rates(_batch(spark, path, "b1"), ["a", "b"], 40) is None
