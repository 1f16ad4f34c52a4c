"""Data for the distributed network, never collected on the driver.

The training split (with its validation flag) is written once to a staging Delta table and pinned to the version
that write made; the driver sends the training processes only that version's file list (with row counts from
one Spark job). Each process reads its share of the files with pyarrow, in Arrow batches, and encodes them with
the preprocessing fitted here by Spark aggregations on the same split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import FeatureSettings
from lakeforge.tables import Table, delta_version, retry_on_conflict

log = logging.getLogger(__name__)
LABEL = "label"
WEIGHT = "_weight"
VALIDATION = "is_validation"


@dataclass(frozen=True)
class StagedTable:
    path: str
    version: int
    files: tuple[tuple[str, int], ...]  # (file URI, rows), the files of ``version``
    train_rows: int
    validation_rows: int


def fit_preprocessing(train: DataFrame, features: FeatureSettings, task: str, max_categories: int):
    """Vocabularies (most frequent first, ties by value) and mean / standard deviation of the rows used to fit."""
    from lakeforge.models.network import Preprocessing

    vocab = {}
    for column in features.categorical:
        top = (train.where(F.col(f"`{column}`").isNotNull())
               .groupBy(F.col(f"`{column}`").cast("string").alias("v")).count()
               .orderBy(F.desc("count"), F.asc("v")).limit(max_categories).collect())
        vocab[column] = [r["v"] for r in top]
    mean, std = {}, {}
    if features.numeric:
        aggs = [agg for c in features.numeric for agg in (F.avg(F.col(f"`{c}`")).alias(f"m_{c}"),
                                                           F.stddev_pop(F.col(f"`{c}`")).alias(f"s_{c}"))]
        row = train.agg(*aggs).first()
        for c in features.numeric:
            mean[c] = float(row[f"m_{c}"] or 0.0)
            std[c] = float(row[f"s_{c}"] or 0.0) or 1.0  # a constant column stays 0 after scaling
    return Preprocessing(task, tuple(features.categorical), tuple(features.numeric), vocab, mean, std)


def stage_training_table(train: DataFrame, features: FeatureSettings, weight_col: str | None, path: Table,
                         files: int) -> StagedTable:
    """Write the feature, label, weight and validation columns of ``train`` to ``path`` (a new Delta version) in
    ``files`` files, and list that version's files with their row counts."""
    columns = [F.col(f"`{c}`") for c in features.feature_columns]
    weight = F.col(f"`{weight_col}`").cast("double") if weight_col else F.lit(1.0)
    staged = train.select(*columns, F.col(LABEL).cast("double").alias(LABEL), weight.alias(WEIGHT),
                          F.col(VALIDATION).cast("boolean").alias(VALIDATION))
    retry_on_conflict(lambda: path.rewrite(staged.repartition(files)), what=f"stage {path}")
    spark: SparkSession = train.sparkSession
    version = delta_version(spark, path)
    pinned = path.read(spark, version)
    counts = (pinned.groupBy(F.input_file_name().alias("file"))
              .agg(F.count(F.lit(1)).alias("rows"), F.sum(F.col(VALIDATION).cast("int")).alias("validation"))
              .orderBy("file").collect())
    validation = sum(int(r["validation"] or 0) for r in counts)
    total = sum(int(r["rows"]) for r in counts)
    log.info("staged %d training rows (%d for validation) in %d files at %s version %d", total, validation,
             len(counts), path, version)
    return StagedTable(path, version, tuple((r["file"], int(r["rows"])) for r in counts), total - validation,
                       validation)


def assign_files(files: tuple[tuple[str, int], ...], world: int) -> list[list[str]]:
    """Files per rank, balanced by rows (largest first to the rank with the fewest rows); the same on every rank."""
    shares: list[list[str]] = [[] for _ in range(world)]
    rows = [0] * world
    for uri, count in sorted(files, key=lambda f: (-f[1], f[0])):
        rank = int(np.argmin(rows))
        shares[rank].append(uri)
        rows[rank] += count
    return shares


def filesystem_for(uri: str):
    """A pyarrow filesystem and path for a plain local path or a URI (``file:``, ``s3://``, ``hdfs://``, ...)."""
    from pyarrow import fs

    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return fs.LocalFileSystem(), unquote(parsed.path)
    return fs.FileSystem.from_uri(uri)


def read_share(uris: list[str], pre, batch_rows: int) -> dict[str, np.ndarray]:
    """This rank's rows, encoded: ``cats``, ``nums``, ``label``, ``weight``, ``validation`` arrays."""
    import pyarrow.parquet as pq

    wanted = [*pre.categorical, *pre.numeric, LABEL, WEIGHT, VALIDATION]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("cats", "nums", "label", "weight", "validation")}
    for uri in uris:
        filesystem, path = filesystem_for(uri)
        with filesystem.open_input_file(path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=batch_rows, columns=wanted):
                cats, nums = pre.encode({c: batch.column(c) for c in (*pre.categorical, *pre.numeric)})
                parts["cats"].append(cats)
                parts["nums"].append(nums)
                parts["label"].append(batch.column(LABEL).to_numpy(zero_copy_only=False).astype(np.float32))
                parts["weight"].append(batch.column(WEIGHT).to_numpy(zero_copy_only=False).astype(np.float32))
                parts["validation"].append(batch.column(VALIDATION).to_numpy(zero_copy_only=False).astype(bool))
    if not parts["label"]:
        return {"cats": np.zeros((0, len(pre.categorical)), np.int64), "nums": np.zeros((0, len(pre.numeric)), np.float32),
                "label": np.zeros(0, np.float32), "weight": np.zeros(0, np.float32), "validation": np.zeros(0, bool)}
    return {k: np.concatenate(v) for k, v in parts.items()}
