"""The human report of one monitoring run: one self-contained HTML page (inline CSS, PNG plots as base64 data
URIs, no external reference). It opens with what a person reads in ten seconds: the verdict, the alerts and
warnings sorted by severity, the out-of-sample performance; then the details: the performance trend per window
(rows the model was trained on drawn apart, the end of the training data marked), the baseline-vs-batch bin
shares of every feature and of the predictions, and the full metrics table."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from typing import Any

from matplotlib.figure import Figure  # figures without pyplot: no backend switched, nothing shown

from lakeforge.config import ABSOLUTE, LOWER_IS_WORSE
from lakeforge.monitor.performance import WindowPerformance
from lakeforge.monitor.stats import ColumnDrift

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.alert{background:#f8d0d0}.warn{background:#fbefc4}.ok{background:#e2f3e2}
.grid{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;padding:8px;width:470px}
.card h3{margin:0 0 4px 0;font-size:15px}.small{font-size:12px;color:#555}
.verdict{font-size:20px;font-weight:600;padding:10px 14px;border-radius:4px;margin:8px 0}
.verdict.alert{background:#f8d0d0}.verdict.warn{background:#fbefc4}.verdict.ok{background:#e2f3e2}
"""
_KEY_METRICS = ("psi", "ks", "js_distance", "null_rate_delta")
_TREND = {"classification": ("auc", "pr_auc", "calibration_error"), "regression": ("rmse", "mae", "mean_error")}
_STATUS_RANK = {"alert": 2, "warn": 1}



def _subplots(figsize):
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def drift_plot(drift: ColumnDrift) -> str:
    """Grouped bars: share of present values per bin, baseline (training split) and this batch."""
    fig, ax = _subplots((6.2, 2.8))
    positions = range(len(drift.bin_labels))
    width = 0.4
    ax.bar([p - width / 2 for p in positions], drift.baseline_shares, width, label="baseline (training)", color="#7a9cc6")
    ax.bar([p + width / 2 for p in positions], drift.current_shares, width, label="this batch", color="#e08a4b")
    ax.set_xticks(list(positions))
    ax.set_xticklabels(drift.bin_labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    ax.legend(fontsize=7)
    return _png(fig)


def _training_end(windows: list[WindowPerformance]) -> int | None:
    """Index (in the sorted window starts) of the last window holding rows the model was trained on, when later
    windows hold none: where the training data ends."""
    starts = sorted({w.window_start for w in windows if w.window_start is not None})
    trained = [i for i, start in enumerate(starts) if any(w.in_sample and w.window_start == start for w in windows)]
    return trained[-1] if trained and trained[-1] < len(starts) - 1 else None


def trend_plot(windows: list[WindowPerformance], task: str) -> str:
    """The headline metrics per window: rows the model never saw as solid lines, rows it was trained on dashed
    and pale; a dotted line where the training data ends."""
    starts = sorted({w.window_start for w in windows if w.window_start is not None})
    fig, ax = _subplots((7.5, 3.2))
    for colour, name in zip(("#1f77b4", "#ff7f0e", "#2ca02c"), _TREND[task]):
        for in_sample in (False, True):
            by_start = {w.window_start: w.values.get(name) for w in windows if w.in_sample == in_sample}
            values = [by_start.get(start) for start in starts]
            if all(v is None for v in values):
                continue
            ax.plot(range(len(starts)), [float("nan") if v is None else v for v in values], marker="o",
                    color=colour, alpha=0.45 if in_sample else 1.0, linestyle="--" if in_sample else "-",
                    label=f"{name} ({'trained on' if in_sample else 'out-of-sample'})")
    end = _training_end(windows)
    if end is not None:
        ax.axvline(end + 0.5, color="#555", linestyle=":")
        ax.text(end + 0.55, 0.98, "training data ends", transform=ax.get_xaxis_transform(), va="top", fontsize=7)
    if task == "classification":
        ax.set_ylim(0, 1)
    ax.set_xticks(range(len(starts)))
    ax.set_xticklabels([str(s) for s in starts], rotation=45, ha="right", fontsize=7)
    ax.set_xlabel("window start")
    ax.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.45))
    return _png(fig)


def severity(row: dict[str, Any]) -> tuple[int, float]:
    """Sort key of a judged row: its status (alert above warn), then how far past its level the value is (as a
    ratio, so metrics of different scales compare)."""
    rank = _STATUS_RANK.get(row["status"], 0)
    level = row["threshold"] if row["status"] == "alert" else row["warn_threshold"]
    value = abs(row["value"]) if row["metric"] in ABSOLUTE else row["value"]
    if not rank or level is None:
        return rank, 0.0
    lower = row["metric"].removeprefix("prediction_") in LOWER_IS_WORSE
    low, high = (value, level) if lower else (level, value)
    return rank, (high / low if low > 0 else float("inf"))


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


def _summary(batch: dict[str, Any], rows: list[dict[str, Any]], windows: list[WindowPerformance],
             notes: tuple[str, ...]) -> list[str]:
    judged = sorted((r for r in rows if r["status"] in _STATUS_RANK), key=severity, reverse=True)
    alerts = sum(r["status"] == "alert" for r in judged)
    if alerts:
        verdict, text = "alert", f"ALERT: {alerts} metric(s) at their alert level"
    elif judged:
        verdict, text = "warn", f"WARN: {len(judged)} metric(s) at their warn level, none at its alert level"
    else:
        verdict, text = "ok", "OK: no metric at its warn or alert level"
    parts = [f"<div class=\"verdict {verdict}\">{html.escape(text)}</div>"]
    overall = next((w for w in windows if w.window_start is None and not w.in_sample), None)
    trained = next((w for w in windows if w.window_start is None and w.in_sample), None)
    headline = _TREND[batch.get("task", "classification")]
    if overall is not None:
        shown = ", ".join(f"{m} {overall.values[m]:.4g}" for m in headline if m in overall.values)
        parts.append(f"<p>Out-of-sample performance ({overall.rows:,} labelled rows the model was not trained on): "
                     f"{html.escape(shown)}.</p>")
    elif windows:
        parts.append("<p>Every labelled row of this batch was in the model's training data: no out-of-sample "
                     "performance yet.</p>")
    else:
        parts.append("<p>No labels yet for the rows of this batch.</p>")
    if trained is not None:
        parts.append(f"<p class=\"small\">{trained.rows:,} labelled rows were in the training data; their figures are "
                     "shown apart (in-sample, never judged).</p>")
    parts += [f"<p class=\"small\">Note: {html.escape(n)}</p>" for n in notes]
    parts.append(f"<h2>Alerts and warnings, most severe first ({len(judged)})</h2>")
    parts.append(_table(judged, ["status", "kind", "feature", "metric", "window_start", "value", "warn_threshold",
                                 "threshold"]) if judged else "<p>Nothing to look at.</p>")
    return parts


def render_report(batch: dict[str, Any], drifts: list[ColumnDrift], rows: list[dict[str, Any]],
                  windows: list[WindowPerformance], notes: tuple[str, ...] = ()) -> str:
    """The page for one batch: ``batch`` (model, version, task, source, batch id, computed time), the compared
    columns, the metric rows (as written to the metrics table), the realised performance per window and scope, and
    notes on what could not be measured."""
    statuses = {(r["feature"], r["metric"]): r["status"] for r in rows if r["window_start"] is None}
    title = f"Monitoring {batch['model_name']} v{batch['model_version']}: {batch['batch_id']}"
    parts = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += _summary(batch, rows, windows, notes)
    parts += ["<h2>Batch</h2>", _table([batch], list(batch))]
    parts.append("<h2>Realised performance</h2>")
    if any(w.window_start is not None for w in windows):
        parts.append(f"<img alt=\"performance trend\" src=\"{trend_plot(windows, batch.get('task', 'classification'))}\">")
    if windows:
        columns = ["scope", "window_start", "labelled_rows", *sorted({m for w in windows for m in w.values})]
        ordered = sorted(windows, key=lambda w: (w.window_start is None, w.window_start or dt.date.min, w.in_sample))
        parts.append(_table([{"scope": "trained on (in-sample)" if w.in_sample else "out-of-sample",
                              "window_start": w.window_start or "all", **w.metrics()} for w in ordered], columns))
    else:
        parts.append("<p>No labels yet for the rows of this batch.</p>")
    parts.append("<h2>Drift per feature and of the predictions (baseline vs this batch)</h2><div class=\"grid\">")
    parts += [_card(d, statuses) for d in drifts]
    parts.append("</div><h2>All metrics</h2>")
    parts.append(_table(rows, ["kind", "feature", "metric", "window_start", "value", "warn_threshold", "threshold",
                               "status"]))
    parts.append("</body></html>")
    return "\n".join(parts)
