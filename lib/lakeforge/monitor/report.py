"""The human report of one monitoring run: one self-contained HTML page (inline CSS, PNG plots as base64 data
URIs, no external reference) with the alerts, the performance trend per window, the baseline-vs-batch bin
shares of every feature and of the predictions, and the full metrics table."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402

from lakeforge.monitor.performance import WindowPerformance  # noqa: E402
from lakeforge.monitor.stats import ColumnDrift  # noqa: E402

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.alert{background:#f8d0d0}.warn{background:#fbefc4}.ok{background:#e2f3e2}
.grid{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;padding:8px;width:470px}
.card h3{margin:0 0 4px 0;font-size:15px}.small{font-size:12px;color:#555}
"""
_KEY_METRICS = ("psi", "ks", "chi2_p_value", "null_rate_delta")


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def drift_plot(drift: ColumnDrift) -> str:
    """Grouped bars: share of present values per bin, baseline (training split) and this batch."""
    fig, ax = plt.subplots(figsize=(6.2, 2.8))
    positions = range(len(drift.bin_labels))
    width = 0.4
    ax.bar([p - width / 2 for p in positions], drift.baseline_shares, width, label="baseline (training)", color="#7a9cc6")
    ax.bar([p + width / 2 for p in positions], drift.current_shares, width, label="this batch", color="#e08a4b")
    ax.set_xticks(list(positions))
    ax.set_xticklabels(drift.bin_labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    ax.legend(fontsize=7)
    return _png(fig)


def trend_plot(windows: list[WindowPerformance]) -> str:
    fig, ax = plt.subplots(figsize=(7, 3))
    labels = [str(w.window_start) for w in windows]
    for name in ("auc", "pr_auc", "calibration_error", "observed_rate", "mean_predicted"):
        values = [getattr(w, name) for w in windows]
        ax.plot(labels, [float("nan") if v is None else v for v in values], marker="o", label=name)
    ax.set_ylim(0, 1)
    ax.set_xlabel("window start")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    ax.legend(fontsize=7, ncol=3)
    return _png(fig)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(f"<tr class=\"{html.escape(str(r.get('status', '')))}\">"
                   + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _card(drift: ColumnDrift, statuses: dict[tuple[str, str], str]) -> str:
    worst = max((statuses.get((drift.name, m), "ok") for m in _KEY_METRICS),
                key=("info", "ok", "warn", "alert").index)
    shown = ", ".join(f"{m} {drift.metrics[m]:.4g}" for m in (*_KEY_METRICS, "null_rate") if m in drift.metrics)
    return (f"<div class=\"card {worst}\"><h3>{html.escape(drift.name)} <span class=\"small\">({drift.kind}, "
            f"{worst})</span></h3><div class=\"small\">{html.escape(shown)}</div>"
            f"<img alt=\"{html.escape(drift.name)} bin shares\" src=\"{drift_plot(drift)}\"></div>")


def render_report(batch: dict[str, Any], drifts: list[ColumnDrift], rows: list[dict[str, Any]],
                  windows: list[WindowPerformance]) -> str:
    """The page for one batch: ``batch`` (model, version, source, batch id, computed time), the compared
    columns, the metric rows (as written to the metrics table) and the realised performance per window."""
    statuses = {(r["feature"], r["metric"]): r["status"] for r in rows if r["window_start"] is None}
    alerts = [r for r in rows if r["status"] == "alert"]
    title = f"Monitoring {batch['model_name']} v{batch['model_version']}: {batch['batch_id']}"
    parts = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             _table([batch], list(batch))]
    parts.append(f"<h2>Alerts ({len(alerts)})</h2>")
    parts.append(_table(alerts, ["kind", "feature", "metric", "window_start", "value", "threshold"]) if alerts
                 else "<p>No metric reached its alert level.</p>")
    parts.append("<h2>Realised performance per window</h2>")
    per_window = [w for w in windows if w.window_start is not None]
    if per_window:
        parts.append(f"<img alt=\"performance trend\" src=\"{trend_plot(per_window)}\">")
    if windows:
        parts.append(_table([{"window_start": w.window_start or "all", **w.metrics()} for w in windows],
                            ["window_start", "labelled_rows", "auc", "pr_auc", "calibration_error", "mean_predicted",
                             "observed_rate"]))
    else:
        parts.append("<p>No labels yet for the rows of this batch.</p>")
    parts.append("<h2>Drift per feature and of the predictions (baseline vs this batch)</h2><div class=\"grid\">")
    parts += [_card(d, statuses) for d in drifts]
    parts.append("</div><h2>All metrics</h2>")
    parts.append(_table(rows, ["kind", "feature", "metric", "window_start", "value", "warn_threshold", "threshold",
                               "status"]))
    parts.append("</body></html>")
    return "\n".join(parts)
