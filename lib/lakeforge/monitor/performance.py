"""Realised performance once labels arrive: a batch's predictions joined by the entity key to the rows of the
labels table whose label is known, per time window of an event column and over the whole batch.

Everything is computed in one Spark job from (window, probability) groups, exactly (no sampling, no binning of
the ranking metrics):
- AUC: the Mann-Whitney statistic with ties counted half, which is what ``sklearn.metrics.roc_auc_score`` gives;
- PR-AUC: average precision, sum over thresholds of (recall step) x precision, as ``average_precision_score``
  computes it (Spark's ``areaUnderPR`` interpolates linearly and reads a little higher);
- calibration error (ECE): sum over ``calibration_bins`` equal-width probability bins of
  |sum of predicted - positives| / rows, with the mean predicted probability and the observed positive rate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


@dataclass(frozen=True)
class WindowPerformance:
    window_start: dt.date | None  # None: all labelled rows of the batch
    rows: int
    positives: int
    auc: float | None  # None when the window holds a single class
    pr_auc: float | None
    calibration_error: float
    mean_predicted: float
    observed_rate: float

    def metrics(self) -> dict[str, float]:
        values = {"labelled_rows": float(self.rows), "auc": self.auc, "pr_auc": self.pr_auc,
                  "calibration_error": self.calibration_error, "mean_predicted": self.mean_predicted,
                  "observed_rate": self.observed_rate}
        return {k: v for k, v in values.items() if v is not None}


def labelled_predictions(predictions: DataFrame, labels: DataFrame, key: list[str], label: str, window_column: str,
                         window: str, labels_name: str) -> DataFrame:
    """``window_start`` (date), ``p`` (probability) and ``y`` (0/1) of every prediction whose label is known."""
    missing = [c for c in (*key, label, window_column) if c not in labels.columns]
    if missing:
        raise ValueError(f"labels table {labels_name} lacks column(s) {missing} (it has {labels.columns}); set "
                         "monitor.performance.labels_table / label / window_column to a table that has the entity "
                         f"key {key}, the label and the window column")
    known = labels.where(F.col(f"`{label}`").isNotNull()).select(
        *key, F.col(f"`{label}`").cast("int").alias("y"),
        F.to_date(F.date_trunc(window, F.col(f"`{window_column}`"))).alias("window_start"))
    return predictions.select(*key, F.col("probability").alias("p")).join(known, key).select("window_start", "p", "y")


def realised_performance(rows: DataFrame, calibration_bins: int) -> list[WindowPerformance]:
    """Performance per window and over all rows (``window_start`` None) of ``rows`` (window_start, p, y)."""
    scopes = F.explode(F.array(F.struct(F.lit(False).alias("all"), F.col("window_start").alias("w")),
                               F.struct(F.lit(True).alias("all"), F.lit(None).cast("date").alias("w"))))
    grouped = (rows.select(scopes.alias("s"), "p", "y").where(F.col("s.all") | F.col("s.w").isNotNull())
               .groupBy(F.col("s.all").alias("all"), F.col("s.w").alias("w"), "p")
               .agg(F.sum("y").alias("pos"), (F.count(F.lit(1)) - F.sum("y")).alias("neg")))
    part = Window.partitionBy("all", "w")
    below = part.orderBy("p").rowsBetween(Window.unboundedPreceding, -1)
    above = part.orderBy(F.col("p").desc()).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    cum_pos, cum_neg = F.sum("pos").over(above), F.sum("neg").over(above)
    parts = grouped.select(
        "all", "w", "pos", "neg",
        F.least(F.floor(F.col("p") * calibration_bins), F.lit(calibration_bins - 1)).alias("bin"),
        (F.col("p") * (F.col("pos") + F.col("neg"))).alias("predicted"),
        (F.col("pos") * (F.coalesce(F.sum("neg").over(below), F.lit(0)) + F.col("neg") / 2)).alias("auc_part"),
        (F.col("pos") * cum_pos / (cum_pos + cum_neg)).alias("ap_part"),
    ).groupBy("all", "w", "bin").agg(*[F.sum(c).alias(c) for c in ("pos", "neg", "predicted", "auc_part", "ap_part")])
    scopes_seen: dict[tuple, list] = {}
    for row in parts.collect():
        scopes_seen.setdefault((row["all"], row["w"]), []).append(row)
    result = []
    for (is_all, window_start), bins in scopes_seen.items():
        pos = int(sum(b["pos"] for b in bins))
        neg = int(sum(b["neg"] for b in bins))
        n = pos + neg
        result.append(WindowPerformance(
            window_start=None if is_all else window_start, rows=n, positives=pos,
            auc=sum(b["auc_part"] for b in bins) / (pos * neg) if pos and neg else None,
            pr_auc=sum(b["ap_part"] for b in bins) / pos if pos and neg else None,
            calibration_error=sum(abs(b["predicted"] - b["pos"]) for b in bins) / n,
            mean_predicted=sum(b["predicted"] for b in bins) / n,
            observed_rate=pos / n,
        ))
    return sorted(result, key=lambda w: (w.window_start is None, w.window_start or dt.date.min))
