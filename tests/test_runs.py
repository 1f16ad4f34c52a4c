"""The job_runs cost report: Spark's own metrics of the tasks a job ran, read back from the event log, priced
from conf, appended to Delta (and to the job's MLflow run)."""

import pytest

from lakeforge.config import CostSettings, InstancePrice
from lakeforge.runs import estimate_cost, job_runs_table, record_job_run
from lakeforge.models.registry import ensure_experiment, mlflow_client
from tests.conftest import settings_for


def _rows(spark, settings):
    return spark.read.format("delta").load(job_runs_table(settings)).orderBy("started_at").collect()


def test_a_job_run_records_spark_metrics_and_its_cost(spark, tmp_path):
    settings = settings_for(tmp_path)
    client = mlflow_client(settings.mlflow)
    mlflow_run = client.create_run(ensure_experiment(client, settings.mlflow)).info.run_id
    with record_job_run(spark, settings, "unit") as run:
        (spark.range(300_000).selectExpr("id", "id % 7 AS k").groupBy("k").count()
         .write.parquet(str(tmp_path / "out")))
        run.mlflow_run_id = mlflow_run
    [row] = _rows(spark, settings)
    assert (row.job, row.env, row.status, row.app_id) == ("unit", "local", "succeeded", spark.sparkContext.applicationId)
    assert row.tasks >= 3 and row.task_seconds > 0 and row.cpu_seconds > 0
    assert row.shuffle_write_bytes > 0 and row.shuffle_read_bytes > 0 and row.output_bytes > 0
    # local[2]: the driver is the one executor, with 2 cores, alive for the whole run
    assert row.executor_core_seconds == pytest.approx(2 * row.wall_seconds, rel=0.02)
    assert row.estimated_cost == pytest.approx(row.executor_core_seconds / 3600 / 4 * 0.192)
    assert (row.instance_type, row.capacity, row.currency) == ("m5.xlarge", "on_demand", "USD")
    logged = client.get_run(mlflow_run).data.metrics
    assert logged["job_output_bytes"] == row.output_bytes and logged["job_estimated_cost"] == pytest.approx(row.estimated_cost)
    lines = run.summary_lines("USD")
    assert lines[-1] == f"  estimated cost   {row.estimated_cost:.4f} USD"


def test_a_failed_job_is_recorded_as_failed_and_its_error_kept(spark, tmp_path):
    settings = settings_for(tmp_path)
    with pytest.raises(ZeroDivisionError):
        with record_job_run(spark, settings, "broken"):
            spark.range(10).count()
            raise ZeroDivisionError("boom")
    [row] = _rows(spark, settings)
    assert (row.job, row.status) == ("broken", "failed") and row.tasks >= 1


def test_spot_prices_and_unpriced_instances():
    settings = settings_for_cost(CostSettings(instance_type="m5.2xlarge", capacity="spot",
                                              prices={"m5.2xlarge": InstancePrice(vcpus=8, on_demand=0.384, spot=0.15)}))
    assert estimate_cost(7200.0, settings) == pytest.approx(7200 / 3600 / 8 * 0.15)
    assert estimate_cost(7200.0, settings_for_cost(CostSettings())) is None
    with pytest.raises(ValueError, match=r"instance_type 'x1.large' has no entry in cost.prices \(priced: \[\]\)"):
        CostSettings(instance_type="x1.large")


def settings_for_cost(cost):
    from pathlib import Path
    return settings_for(Path("/tmp/unused")).model_copy(update={"cost": cost})
