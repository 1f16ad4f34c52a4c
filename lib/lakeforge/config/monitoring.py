"""Monitoring settings: metric thresholds, per-feature overrides, realised performance, alerts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lakeforge.config._base import _Frozen


class Threshold(_Frozen):
    """Warn and alert levels of one metric; a level left out is not checked."""

    warn: float | None = None
    alert: float | None = None


# Metrics where a low value is bad (status when value < level); every other thresholded metric is bad when high
# (status when value >= level); ABSOLUTE ones are judged on their absolute value (a bias either way is bad).
LOWER_IS_WORSE = frozenset({"chi2_p_value", "auc", "r2"})
ABSOLUTE = frozenset({"mean_error"})
UNIT_INTERVAL = frozenset({"chi2_p_value", "auc", "calibration_error", "js_distance"})
FEATURE_METRICS = ("psi", "ks", "js_distance", "chi2_p_value", "null_rate_delta")


class MonitorThresholds(_Frozen):
    """Per-metric levels (a level left out is not checked; a metric without levels is information only).

    Drift is judged by effect size, how far a distribution moved, not by a test's p-value (which, with hundreds
    of thousands of rows, is tiny for differences nobody cares about): psi (every feature), ks (numeric: the
    largest gap between the two CDFs), js_distance (categorical: Jensen-Shannon distance, base 2, in [0, 1]) and
    null_rate_delta (absolute change of the null rate). chi2_p_value has no levels by default; given levels, it
    only counts where the feature's js_distance also reaches its warn level. Predictions: prediction_psi,
    prediction_ks. Realised performance on out-of-sample labelled rows: auc (minimum) and calibration_error
    (maximum) of a classifier; rmse, mae, mean_error (absolute bias), r2 (minimum) of a regressor, and
    rmse_ratio, the window's RMSE over the model's holdout RMSE (unit-free, so it has default levels)."""

    psi: Threshold = Threshold(warn=0.1, alert=0.25)
    ks: Threshold = Threshold(warn=0.1, alert=0.2)
    js_distance: Threshold = Threshold(warn=0.1, alert=0.2)
    chi2_p_value: Threshold = Threshold()
    null_rate_delta: Threshold = Threshold(warn=0.02, alert=0.05)
    prediction_psi: Threshold = Threshold(warn=0.1, alert=0.25)
    prediction_ks: Threshold = Threshold(warn=0.1, alert=0.2)
    auc: Threshold = Threshold(warn=0.65, alert=0.6)
    calibration_error: Threshold = Threshold(warn=0.05, alert=0.1)
    rmse: Threshold = Threshold()
    mae: Threshold = Threshold()
    mean_error: Threshold = Threshold()
    r2: Threshold = Threshold()
    rmse_ratio: Threshold = Threshold(warn=1.25, alert=1.5)

    @model_validator(mode="after")
    def _ordered(self) -> "MonitorThresholds":
        for name in type(self).model_fields:
            _check_levels(name, getattr(self, name))
        return self


def _check_levels(metric: str, level: Threshold) -> None:
    if metric in UNIT_INTERVAL:
        for value in (level.warn, level.alert):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{metric}: levels must lie in [0, 1], got {value}")
    if level.warn is None or level.alert is None:
        return
    if metric in LOWER_IS_WORSE and level.warn < level.alert:
        raise ValueError(f"{metric}: low values are bad, so warn ({level.warn}) must be >= alert ({level.alert})")
    if metric not in LOWER_IS_WORSE and level.warn > level.alert:
        raise ValueError(f"{metric}: high values are bad, so warn ({level.warn}) must be <= alert ({level.alert})")


class PerformanceSettings(_Frozen):
    """Realised performance once labels arrive: the scored rows joined by the entity key to the labels table."""

    labels_table: str | None = Field(None, description="Delta table path with the key, label and window column "
                                                       "(default: the gold features table, latest version)")
    label: str | None = Field(None, description="label column of labels_table (default: features.label)")
    window_column: str | None = Field(None, description="date or timestamp column of labels_table the windows are cut "
                                                        "on (default: features.split.column of a time split; a "
                                                        "dataset without time has no windows)")
    window: Literal["none", "day", "week", "month", "quarter", "year"] = Field(
        "month", description="none: overall figures only (a dataset without time)")
    min_rows: int = Field(100, ge=1, description="a window with fewer labelled rows is reported, not judged")
    calibration_bins: int = Field(10, ge=2, description="equal-width probability bins of the calibration error")


class MonitorSettings(_Frozen):
    table: str = Field("monitoring_metrics", description="Delta table under <storage.root>/monitoring/")
    bins: int = Field(10, ge=2, description="PSI bins: quantiles of the training split")
    ks_bins: int = Field(100, ge=10, description="fine quantile bins the KS statistic is read from (a multiple of bins)")
    top_categories: int = Field(20, ge=1, description="categories kept per feature; the rest are pooled as other")
    thresholds: MonitorThresholds = MonitorThresholds()
    feature_thresholds: dict[str, dict[Literal[FEATURE_METRICS], Threshold]] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="per feature, per metric levels that replace thresholds.<metric>")
    performance: PerformanceSettings = PerformanceSettings()
    report: bool = Field(True, description="write the HTML report and log it to MLflow")
    webhook_url: str | None = Field(None, description="POST a JSON alert here when a metric reaches its alert level "
                                                      "(a URL without credentials; otherwise webhook_url_env)")
    webhook_url_env: str | None = Field(None, description="environment variable holding the webhook URL, for URLs that "
                                                          "carry a token")
    webhook_timeout_seconds: float = Field(5.0, gt=0, description="deadline of the whole delivery, retries included")

    @model_validator(mode="after")
    def _overrides_ordered(self) -> "MonitorSettings":
        if self.webhook_url and self.webhook_url_env:
            raise ValueError("give webhook_url or webhook_url_env, not both")
        if self.ks_bins % self.bins:
            raise ValueError(f"ks_bins ({self.ks_bins}) must be a multiple of bins ({self.bins}): the PSI edges are "
                             "every (ks_bins / bins)-th fine edge")
        for feature, levels in self.feature_thresholds.items():
            for metric, level in levels.items():
                try:
                    _check_levels(metric, level)
                except ValueError as exc:
                    raise ValueError(f"feature_thresholds.{feature}.{exc}") from None
        return self

    def threshold(self, metric: str, feature: str | None = None) -> Threshold:
        """The levels of ``metric`` (a field of ``MonitorThresholds``) for ``feature``; none when unthresholded."""
        override = self.feature_thresholds.get(feature or "", {}).get(metric)
        if override is not None:
            return override
        return getattr(self.thresholds, metric) if metric in MonitorThresholds.model_fields else Threshold()
