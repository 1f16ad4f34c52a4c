"""Run by test_train.py in its own process: a 2-worker xgboost.spark fit on a local-cluster master (two executor
JVMs), through lakeforge's pipeline and checks. Prints one JSON line."""

import json
import random
import sys

from pyspark.sql import SparkSession

from lakeforge.config import FeatureSettings, ModelSettings, SparkSettings, SplitSettings
from lakeforge.spark import configure_spark_with_lakeforge, delta_jars_for
from lakeforge.train.checks import check_cluster
from lakeforge.train.estimator import build_pipeline, fit_pipeline, holdout_metrics
from tests.conftest import SMALL_SESSION

jar_cache = sys.argv[1]
settings = SparkSettings(jar_cache=jar_cache)
spark = configure_spark_with_lakeforge(
    SparkSession.builder, settings, delta_jars=delta_jars_for(settings), master="local-cluster[2,1,1024]",
    extra_conf=SMALL_SESSION).getOrCreate()
try:
    rng = random.Random(5)
    rows = []
    for _ in range(4000):
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        rows.append((rng.choice("ab"), x1, x2, float((x1 + x2 > 0) != (rng.random() < 0.1))))
    frame = spark.createDataFrame(rows, "c string, x1 double, x2 double, label double")
    train, test = frame.randomSplit([0.8, 0.2], seed=1)
    features = FeatureSettings(table="t", base="t", label="label", categorical=("c",), numeric=("x1", "x2"),
                               split=SplitSettings(column="x1", test_from="0"))
    model = ModelSettings(registered_name="m", num_workers=2, params={"n_estimators": 30, "max_depth": 3})
    check_cluster(spark, model.num_workers)
    fitted = fit_pipeline(build_pipeline(features, model), train, model.task)
    executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1  # minus the driver
    print(json.dumps({"auc": holdout_metrics(fitted.score(test))["auc"], "executors": executors,
                      "master": spark.sparkContext.master}))
finally:
    spark.stop()
