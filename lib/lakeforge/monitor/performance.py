"""Realised performance once labels arrive: a batch's predictions joined by the entity key to the rows of the
labels table whose label is known, per time window of an event column (or over the whole batch only, for data
without time), each scope split into the rows the model was trained on (in-sample) and the others.

Only out-of-sample rows say how the model does on data it has not seen; in-sample figures are reported apart,
labelled, and never judged. Everything is computed in one Spark job, exactly (no sampling, no binning of the
ranking metrics):
- classifier: AUC as the Mann-Whitney statistic with ties counted half (``sklearn.metrics.roc_auc_score``);
  PR-AUC as average precision (``average_precision_score``; Spark's ``areaUnderPR`` interpolates linearly and
  reads a little higher); calibration error (ECE) over ``calibration_bins`` equal-width probability bins:
  sum of |predicted - positives| / rows; mean predicted probability and observed positive rate;
- regressor: RMSE, MAE, mean error (prediction - label: the bias), R2 (1 - SSE / SST), mean label and mean
  prediction.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakeforge.errors import InputError


@dataclass(frozen=True)
class WindowPerformance:
    window_start: dt.date | None  # None: every labelled row of the scope
    in_sample: bool  # True: rows the model was trained on (reported, never judged)
    rows: int
    values: dict[str, float] = field(default_factory=dict)  # None-free: a metric that cannot be computed is absent

    def metrics(self) -> dict[str, float]:
        return {"labelled_rows": float(self.rows), **self.values}


def labelled_predictions(predictions: DataFrame, labels: DataFrame, key: list[str], label: str, output: str,
                         window_column: str | None, window: str, labels_name: str, classify: bool = True,
                         trained_keys: DataFrame | None = None) -> DataFrame:
    """``window_start`` (date; null without a window column), ``p`` (the prediction), ``y`` (the label) and
    ``in_sample`` (the key is among ``trained_keys``) of every prediction whose label is known."""
    wanted = [*key, label, *([window_column] if window_column else [])]
    missing = [c for c in wanted if c not in labels.columns]
    if missing:
        raise InputError(f"labels table {labels_name} lacks column(s) {missing} (it has {labels.columns}); set "
                         "monitor.performance.labels_table / label / window_column to a table that has the entity "
                         f"key {key}, the label and the window column (window: none for data without time)")
    start = (F.to_date(F.date_trunc(window, F.col(f"`{window_column}`").cast("timestamp"))) if window_column
             else F.lit(None).cast("date"))
    known = labels.where(F.col(f"`{label}`").isNotNull()).select(
        *key, F.col(f"`{label}`").cast("int" if classify else "double").alias("y"), start.alias("window_start"))
    rows = predictions.select(*key, F.col(f"`{output}`").alias("p")).join(known, key)
    if trained_keys is None:
        return rows.select("window_start", "p", "y", F.lit(False).alias("in_sample"))
    flagged = rows.join(trained_keys.select(*key).withColumn("__trained", F.lit(True)), key, "left")
    return flagged.select("window_start", "p", "y", F.coalesce("__trained", F.lit(False)).alias("in_sample"))


def _scoped(rows: DataFrame) -> DataFrame:
    """Each row twice: in its window (``w``) and in the scope of all rows (``all`` true, ``w`` null)."""
    scopes = F.explode(F.array(F.struct(F.lit(False).alias("all"), F.col("window_start").alias("w")),
                               F.struct(F.lit(True).alias("all"), F.lit(None).cast("date").alias("w"))))
    return (rows.select("in_sample", scopes.alias("s"), "p", "y").where(F.col("s.all") | F.col("s.w").isNotNull())
            .select("in_sample", F.col("s.all").alias("all"), F.col("s.w").alias("w"), "p", "y"))


def _sorted(result: list[WindowPerformance]) -> list[WindowPerformance]:
    return sorted(result, key=lambda w: (w.in_sample, w.window_start is None, w.window_start or dt.date.min))


def realised_performance(rows: DataFrame, calibration_bins: int) -> list[WindowPerformance]:
    """A classifier's performance per (in-sample or not, window) and over all rows of each, from ``rows``
    (window_start, p, y, in_sample)."""
    grouped = (_scoped(rows).groupBy("in_sample", "all", "w", "p")
               .agg(F.sum("y").alias("pos"), (F.count(F.lit(1)) - F.sum("y")).alias("neg")))
    part = Window.partitionBy("in_sample", "all", "w")
    below = part.orderBy("p").rowsBetween(Window.unboundedPreceding, -1)
    above = part.orderBy(F.col("p").desc()).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    cum_pos, cum_neg = F.sum("pos").over(above), F.sum("neg").over(above)
    parts = grouped.select(
        "in_sample", "all", "w", "pos", "neg",
        F.least(F.floor(F.col("p") * calibration_bins), F.lit(calibration_bins - 1)).alias("bin"),
        (F.col("p") * (F.col("pos") + F.col("neg"))).alias("predicted"),
        (F.col("pos") * (F.coalesce(F.sum("neg").over(below), F.lit(0)) + F.col("neg") / 2)).alias("auc_part"),
        (F.col("pos") * cum_pos / (cum_pos + cum_neg)).alias("ap_part"),
    ).groupBy("in_sample", "all", "w", "bin").agg(
        *[F.sum(c).alias(c) for c in ("pos", "neg", "predicted", "auc_part", "ap_part")])
    scopes: dict[tuple, list] = {}
    for row in parts.collect():
        scopes.setdefault((row["in_sample"], row["all"], row["w"]), []).append(row)
    result = []
    for (in_sample, is_all, window_start), bins in scopes.items():
        pos = int(sum(b["pos"] for b in bins))
        neg = int(sum(b["neg"] for b in bins))
        n = pos + neg
        values = {"calibration_error": sum(abs(b["predicted"] - b["pos"]) for b in bins) / n,
                  "mean_predicted": sum(b["predicted"] for b in bins) / n, "observed_rate": pos / n}
        if pos and neg:  # AUC and PR-AUC need both classes
            values["auc"] = sum(b["auc_part"] for b in bins) / (pos * neg)
            values["pr_auc"] = sum(b["ap_part"] for b in bins) / pos
        result.append(WindowPerformance(None if is_all else window_start, bool(in_sample), n, values))
    return _sorted(result)


def regression_performance(rows: DataFrame) -> list[WindowPerformance]:
    """A regressor's RMSE, MAE, mean error, R2, mean label and mean prediction per (in-sample or not, window)
    and over all rows of each, from ``rows`` (window_start, p, y, in_sample)."""
    error = F.col("p") - F.col("y")
    sums = _scoped(rows).groupBy("in_sample", "all", "w").agg(
        F.count(F.lit(1)).alias("n"), F.sum(error).alias("e"), F.sum(error * error).alias("sse"),
        F.sum(F.abs(error)).alias("ae"), F.sum("y").alias("sy"), F.sum(F.col("y") * F.col("y")).alias("syy"),
        F.sum("p").alias("sp"))
    result = []
    for row in sums.collect():
        n = int(row["n"])
        mean_y = row["sy"] / n
        sst = row["syy"] - n * mean_y * mean_y
        values = {"rmse": math.sqrt(row["sse"] / n), "mae": row["ae"] / n, "mean_error": row["e"] / n,
                  "mean_label": mean_y, "mean_prediction": row["sp"] / n}
        if sst > 1e-12 * max(1.0, row["syy"]):  # R2 needs labels that vary
            values["r2"] = 1.0 - row["sse"] / sst
        result.append(WindowPerformance(None if row["all"] else row["w"], bool(row["in_sample"]), n, values))
    return _sorted(result)
