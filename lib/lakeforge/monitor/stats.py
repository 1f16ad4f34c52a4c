"""Drift statistics from binned counts (pure Python, no Spark): PSI, the two-sample KS statistic read from fine
quantile bins, the Jensen-Shannon distance and the chi-square test of a category mix, and the statuses that
thresholds give them.

Alerts are raised on effect sizes (PSI, KS, Jensen-Shannon distance, the change of the null rate): how far a
distribution moved. The chi-square p-value is kept as information: with the row counts of a real batch it is
tiny for shifts of a fraction of a percent (README, Monitoring).

KS approximation: the batch is counted in the baseline's fine quantile bins (``monitor.ks_bins`` of them), so
both empirical CDFs are known exactly at every fine edge, and the statistic returned is the largest CDF gap
over those edges. The exact statistic (the supremum over all values) is never smaller, and exceeds it by at
most the largest share a single fine bin holds on either side (``ks_error_bound``): about 1/ks_bins for the
baseline, more only where the batch piles into one fine bin. Where a feature takes fewer distinct values than
there are fine edges (counts, hours, flags), every value is an edge and the statistic is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

from lakeforge.config import ABSOLUTE, LOWER_IS_WORSE, Threshold

EPSILON = 1e-4  # floor on a bin's share, so an empty bin does not make PSI infinite


def population_stability_index(expected: dict[str, float], actual: dict[str, float]) -> float:
    """PSI = sum over bins of (actual - expected) * ln(actual / expected), shares floored at EPSILON."""
    psi = 0.0
    for bin_ in set(expected) | set(actual):
        e = max(expected.get(bin_, 0.0), EPSILON)
        a = max(actual.get(bin_, 0.0), EPSILON)
        psi += (a - e) * math.log(a / e)
    return psi


def shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def psi_of_counts(expected: list[int], actual: list[int]) -> float:
    """PSI of two count vectors over the same bins; 0 when either side has no present values."""
    if not sum(expected) or not sum(actual):
        return 0.0
    return population_stability_index(dict(enumerate(shares(expected))), dict(enumerate(shares(actual))))


def merge_bins(fine_edges: list[float], fine_counts: list[int], edges: list[float]) -> list[int]:
    """Counts of the coarse bins cut at ``edges`` (each one of ``fine_edges``) from the fine bins' counts."""
    merged = [0] * (len(edges) + 1)
    for i, count in enumerate(fine_counts):
        lower = fine_edges[i - 1] if i > 0 else -math.inf  # the fine bin [lower, next edge)
        merged[sum(1 for e in edges if e <= lower)] += count
    return merged


def ks_from_bins(expected: list[int], actual: list[int]) -> tuple[float, float]:
    """(KS statistic over the bin edges, bound on how far the exact statistic may lie above it)."""
    if not sum(expected) or not sum(actual):
        return 0.0, 0.0
    e, a = shares(expected), shares(actual)
    gap = cum_e = cum_a = 0.0
    for share_e, share_a in zip(e[:-1], a[:-1]):
        cum_e, cum_a = cum_e + share_e, cum_a + share_a
        gap = max(gap, abs(cum_e - cum_a))
    return gap, max(max(e), max(a))


def chi_square(expected: list[int], actual: list[int]) -> tuple[float, float]:
    """Chi-square test of homogeneity of two samples' category counts (2 x k table, no continuity correction;
    categories absent from both are dropped). Returns (statistic, p-value); (0, 1) with fewer than 2 categories."""
    kept = [(e, a) for e, a in zip(expected, actual) if e + a > 0]
    if len(kept) < 2 or not sum(e for e, _ in kept) or not sum(a for _, a in kept):
        return 0.0, 1.0
    result = chi2_contingency([[e for e, _ in kept], [a for _, a in kept]], correction=False)
    return float(result.statistic), float(result.pvalue)


def js_distance(expected: list[int], actual: list[int]) -> float:
    """Jensen-Shannon distance (base 2: 0 same mix, 1 disjoint) of two count vectors over the same categories;
    0 when either side has no present values."""
    if not sum(expected) or not sum(actual):
        return 0.0
    return float(jensenshannon(shares(expected), shares(actual), base=2))


def status(metric: str, value: float, level: Threshold) -> str:
    """ok / warn / alert; 'info' when the metric has no levels. Low is bad for chi2_p_value, auc and r2; a bias
    (mean_error) is judged by its absolute value."""
    if level.warn is None and level.alert is None:
        return "info"
    base = metric.removeprefix("prediction_")
    lower = base in LOWER_IS_WORSE
    value = abs(value) if base in ABSOLUTE else value
    if level.alert is not None and (value < level.alert if lower else value >= level.alert):
        return "alert"
    if level.warn is not None and (value < level.warn if lower else value >= level.warn):
        return "warn"
    return "ok"


@dataclass(frozen=True)
class ColumnDrift:
    """Baseline against batch for one column: what the report plots, and the metric values."""

    name: str
    kind: str  # numeric | categorical | prediction
    bin_labels: list[str]
    baseline_shares: list[float]
    current_shares: list[float]
    metrics: dict[str, float]


def _edge_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    shown = [f"{e:.4g}" for e in edges]
    return [f"< {shown[0]}", *[f"[{lo}, {hi})" for lo, hi in zip(shown, shown[1:])], f">= {shown[-1]}"]


def compare(name: str, baseline: dict, current: dict, prediction: bool = False) -> ColumnDrift:
    """The drift metrics of one column: PSI, KS (numeric) or Jensen-Shannon distance and chi-square (categorical),
    null rates. They compare the present values; missing values are measured by the null rate and its change."""
    metrics: dict[str, float] = {}
    if baseline["kind"] == "numeric":
        fine_b, fine_c = baseline["fine_counts"], current["fine_counts"]
        coarse_b = merge_bins(baseline["fine_edges"], fine_b, baseline["psi_edges"])
        coarse_c = merge_bins(baseline["fine_edges"], fine_c, baseline["psi_edges"])
        metrics["psi"] = psi_of_counts(coarse_b, coarse_c)
        metrics["ks"], metrics["ks_error_bound"] = ks_from_bins(fine_b, fine_c)
        labels = _edge_labels(baseline["psi_edges"])
    else:
        coarse_b, coarse_c = baseline["counts"], current["counts"]
        metrics["psi"] = psi_of_counts(coarse_b, coarse_c)
        metrics["js_distance"] = js_distance(coarse_b, coarse_c)
        metrics["chi2_statistic"], metrics["chi2_p_value"] = chi_square(coarse_b, coarse_c)
        labels = list(baseline["categories"])
    metrics["null_rate"] = current["null_rate"]
    metrics["baseline_null_rate"] = baseline["null_rate"]
    metrics["null_rate_delta"] = abs(current["null_rate"] - baseline["null_rate"])
    metrics["rows"] = float(current["rows"])
    kind = "prediction" if prediction else baseline["kind"]
    return ColumnDrift(name, kind, labels, shares(coarse_b), shares(coarse_c), metrics)
