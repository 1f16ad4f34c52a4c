"""Run by test_train_deep.py in its own process (so that the test can kill it mid-training): the torch network on
seeded rows, 2 processes under TorchDistributor (or the given backend) on the given master. Prints one JSON line with the run's record.

    python tests/deep_resume.py JAR_CACHE WORK_DIR MASTER [BACKEND]
"""

import json
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from lakeforge.config import DeepSettings, SparkSettings
from lakeforge.tables import GoldTable
from lakeforge.spark import configure_spark_with_lakeforge, delta_jars_for
from lakeforge.train import train_model
from lakeforge.models.registry import mlflow_client
from tests.conftest import SMALL_SESSION, settings_for
from tests.support.toy import FEATURES, TOY_SCHEMA, toy_rows

ROWS = 12_000

jar_cache, work, master = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
backend = sys.argv[4] if len(sys.argv) > 4 else "torch_distributor"
spark = configure_spark_with_lakeforge(
    SparkSession.builder, SparkSettings(jar_cache=jar_cache), delta_jars=delta_jars_for(SparkSettings(jar_cache=jar_cache)),
    master=master, extra_conf=SMALL_SESSION).getOrCreate()
try:
    path = str(work / "gold")
    if not (work / "gold" / "_delta_log").exists():
        spark.createDataFrame(toy_rows(ROWS), TOY_SCHEMA).write.format("delta").save(path)
    base = settings_for(work)
    deep = DeepSettings(backend=backend, num_processes=2, hidden_units=32, embedding_dim=4, batch_size=32, learning_rate=0.002,
                        max_epochs=5, patience=5, checkpoint_dir=str(work / "checkpoints"))
    model = base.model.model_copy(update={"framework": "torch", "deep": deep, "registered_name": "toy_net",
                                          "min_auc": 0.5})
    settings = base.model_copy(update={"features": FEATURES, "model": model})
    result = train_model(spark, settings, GoldTable(path, 0, ROWS, True, {}), force=True)
    run = mlflow_client(settings.mlflow).get_run(result.run_id)
    print(json.dumps({"auc": result.metrics["auc"], "metrics": run.data.metrics, "master": spark.sparkContext.master}))
finally:
    spark.stop()
