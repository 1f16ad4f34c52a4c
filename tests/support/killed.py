"""Run by test_resume.py in its own process, which kills itself (SIGKILL: no finally, no atexit) at a named point:

    python tests/support/killed.py JAR_CACHE WORK_DIR POINT

POINT: ``job`` (inside a recorded job run), or a step of training: ``fit`` (fitted, nothing logged), ``logged``
(the model logged, not registered), ``registered`` (registered, not gated), ``gated`` (the aliases moved, the
decision not recorded).
"""

import os
import signal
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from lakeforge.config import SparkSettings
from lakeforge.spark import configure_spark_with_lakeforge, delta_jars_for
from tests.conftest import SMALL_SESSION
from tests.support.resume_setup import gold_table, resume_settings


def die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


jar_cache, work, point = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
spark = configure_spark_with_lakeforge(
    SparkSession.builder, SparkSettings(jar_cache=jar_cache), delta_jars=delta_jars_for(SparkSettings(jar_cache=jar_cache)),
    master="local[1]", extra_conf=SMALL_SESSION).getOrCreate()
settings = resume_settings(work)
if point == "job":
    from lakeforge.runs import record_job_run

    with record_job_run(spark, settings, "doomed"):
        die()
import lakeforge.train as train  # noqa: E402
from lakeforge.train import resume  # noqa: E402

if point == "fit":
    train._evaluate_and_register = die
elif point == "logged":
    resume.register_version = die
elif point == "registered":
    resume.gate_and_record = die
elif point == "gated":
    real = resume.apply_gate

    def gate_then_die(*args, **kwargs):
        real(*args, **kwargs)
        die()

    resume.apply_gate = gate_then_die
train.train_model(spark, settings, gold_table(spark, work))
raise SystemExit(f"{point}: not killed")
