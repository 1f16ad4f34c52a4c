import pytest
from delta.tables import DeltaTable

from lakeforge.ingest.maintenance import RetentionTooShortError, maintain_source, vacuum_table
from tests.conftest import settings_for
from tests.test_ingest import READINGS


@pytest.fixture
def ingested(spark, tmp_path):
    """A silver table written in four small appends (several small files), as four batches would leave it."""
    source = READINGS.model_copy(update={"zorder_by": ("kind",)})
    settings = settings_for(tmp_path, sources={"readings": source})
    for i in range(4):
        rows = [(i * 10 + j, float(j), f"k{j % 3}") for j in range(5)]
        spark.createDataFrame(rows, "id int, value double, kind string").write.format("delta").mode("append").save(
            settings.storage.table_ref("silver", "readings"))
    return settings


def test_optimize_compacts_with_zorder_and_vacuum_keeps_the_safe_retention(spark, ingested):
    path = ingested.storage.table_ref("silver", "readings")
    rows_before = spark.read.format("delta").load(path).count()
    result = maintain_source(spark, ingested, "readings")
    assert result.files_removed_by_optimize > 1 and result.files_added_by_optimize == 1
    assert result.zorder_by == ("kind",)
    assert result.vacuum_retention_hours == 168.0
    assert result.files_deleted_by_vacuum == 0          # compacted files are younger than 7 days: kept
    history = DeltaTable.forPath(spark, path).history().where("operation = 'OPTIMIZE'").first()
    assert history["operationParameters"]["zOrderBy"] == '["kind"]'
    assert spark.read.format("delta").load(path).count() == rows_before == 20


def test_vacuum_below_the_safe_retention_is_refused_unless_forced(spark, ingested):
    path = ingested.storage.table_ref("silver", "readings")
    maintain_source(spark, ingested, "readings")
    with pytest.raises(RetentionTooShortError) as err:
        vacuum_table(spark, path, 0)
    assert str(err.value) == (f"VACUUM of {path} with 0 hours would delete files younger than the table's retention of "
                              "168 hours, breaking time travel and possibly running readers or writers; use --force if "
                              "you are sure")
    assert vacuum_table(spark, path, 0, force=True) > 0     # the pre-OPTIMIZE files go
    assert spark.read.format("delta").load(path).count() == 20
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled", "true") == "true"
