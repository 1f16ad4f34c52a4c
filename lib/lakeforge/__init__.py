"""lakeforge: tabular machine learning on Spark, from raw files to monitored predictions in Delta Lake.

Every public function takes the ``SparkSession`` (or a DataFrame) and typed settings explicitly;
nothing here creates a session or reads files and environment variables on import.
"""

__version__ = "0.1.0"
