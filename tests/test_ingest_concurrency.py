"""Two ingests of the same batch at the same time (two Spark sessions on one cluster) land it exactly once."""

import threading
from pathlib import Path

from delta.tables import DeltaTable

from lakeforge.ingest import bronze_table, ingest_source, silver_table
from tests.conftest import settings_for
from tests.test_ingest import FIRST_BATCH, READINGS


def test_concurrent_ingests_of_one_batch_land_it_once(spark, tmp_path):
    settings = settings_for(tmp_path, sources={"readings": READINGS})
    path = Path(settings.storage.landing) / "readings" / "b1.csv"
    path.parent.mkdir(parents=True)
    path.write_text(FIRST_BATCH)
    results, errors = [], []
    start = threading.Barrier(2)

    def run():
        session = spark.newSession()  # separate SQL conf, as two jobs would have
        start.wait()
        try:
            results.append(ingest_source(session, settings, "readings", str(path)))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)

    assert errors == []
    assert sorted(r.bronze_appended for r in results) == [False, True]
    assert sorted(r.silver_merged for r in results) == [False, True]
    assert spark.read.format("delta").load(bronze_table(settings, "readings")).count() == 7
    silver = spark.read.format("delta").load(silver_table(settings, "readings"))
    assert sorted(r["id"] for r in silver.collect()) == [1, 4]
    merges = DeltaTable.forPath(spark, silver_table(settings, "readings")).history().where("operation = 'MERGE'").count()
    assert merges == 1
