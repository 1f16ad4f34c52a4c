"""Where every table and file of one environment lives: one function per location, each computed from the
settings alone (no I/O), so that a stage finds what another stage wrote without importing it.

Tables are ``Table`` identifiers: by path (``<storage.root>/<layer>/<name>``) or by name
(``<catalog>.<schema>.<layer>_<name>``, ``storage.schema``); files live under ``storage.files`` (default: the root).

| table | function | by path | by name |
|---|---|---|---|
| a source's bronze, silver, quarantine | ``bronze_table`` ... | ``bronze/<source>`` | ``bronze_<source>`` |
| data-quality metrics | ``dq_metrics_table`` | ``quality/dq_metrics`` | ``dq_metrics`` |
| gold (``features.table``) | ``gold_table`` | ``gold/<table>`` | ``<table>`` |
| predictions (``score.table``) | ``predictions_table`` | ``predictions/<table>`` | ``<table>`` |
| monitoring (``monitor.table``) | ``monitor_table`` | ``monitoring/<table>`` | ``<table>`` |
| job runs | ``job_runs_table`` | ``operations/job_runs`` | ``job_runs`` |
| served requests (``serve.inference_log``) | ``inference_log_table`` | ``monitoring/<table>`` | a path: ``<files>/tables/monitoring/<table>`` |
| the torch network's staged training data | ``staging_table`` | ``staging/<model>_training`` | ``staging_...`` |

| files | function |
|---|---|
| ``_checkpoints/<source>`` (a stream's checkpoint) | ``stream_checkpoint_path`` |
| ``monitoring/reports/...`` | ``report_path`` |
| ``checkpoints/<model>/<identity>`` (the torch network's) | ``training_checkpoint_path`` |
| ``search/`` (Optuna studies) | ``search_folder`` |

``entity_key`` is here too: the columns that name one row of the gold table, and so of the predictions and
monitoring tables built from it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from lakeforge.config import Settings
from lakeforge.tables import Table


def _table(settings: Settings, layer: str, name: str) -> Table:
    return Table(settings.storage.table_ref(layer, name))


def bronze_table(settings: Settings, source: str) -> Table:
    return _table(settings, "bronze", source)


def silver_table(settings: Settings, source: str) -> Table:
    return _table(settings, "silver", source)


def quarantine_table(settings: Settings, source: str) -> Table:
    return _table(settings, "quarantine", source)


def dq_metrics_table(settings: Settings) -> Table:
    return _table(settings, "quality", "dq_metrics")


def gold_table(settings: Settings) -> Table:
    return _table(settings, "gold", settings.features.table)


def predictions_table(settings: Settings) -> Table:
    return _table(settings, "predictions", settings.score.table)


def monitor_table(settings: Settings) -> Table:
    return _table(settings, "monitoring", settings.monitor.table)


def job_runs_table(settings: Settings) -> Table:
    return _table(settings, "operations", "job_runs")


def staging_table(settings: Settings, model_name: str) -> Table:
    """The torch network's training rows, staged once per training (a name: the model's, dots made _)."""
    return _table(settings, "staging", f"{model_name.replace('.', '_')}_training")


def inference_log_table(settings: Settings) -> Table:
    """Served requests (``lakeforge serve``), written by delta-rs, which writes by path: ``monitoring/<table>``
    under the root, or under ``storage.files`` (``tables/monitoring/<table>``) when tables are addressed by name."""
    name = settings.serve.inference_log.table
    if settings.storage.by_name:
        return Table(settings.storage.file_path("tables", "monitoring", name))
    return _table(settings, "monitoring", name)


def stream_checkpoint_path(settings: Settings, source: str) -> str:
    return settings.storage.file_path("_checkpoints", source)


def report_path(settings: Settings, model_name: str, model_version: int, batch_id: str, source_table: str,
                source_version: int) -> str:
    """The HTML report of one monitored batch."""
    slug = f"{Table.of(source_table).short_name}_v{source_version}_{hashlib.sha1(batch_id.encode()).hexdigest()[:8]}"
    return settings.storage.file_path("monitoring", "reports", model_name, f"v{model_version}", f"{slug}.html")


def training_checkpoint_path(settings: Settings, identity: dict[str, Any]) -> str:
    """The durable checkpoint folder of one training identity (data version, config, params): a rerun of the
    same training finds the checkpoints of the run that failed."""
    base = settings.model.deep.checkpoint_dir or settings.storage.file_path("checkpoints")
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{base.rstrip('/')}/{settings.model.registered_name}/{digest}"


def search_folder(settings: Settings) -> str:
    """Where searches keep their state (an Optuna study per training identity) under the files location."""
    return settings.storage.file_path("search")


def entity_key(settings: Settings) -> list[str]:
    """The columns naming one gold row: the base source's primary key (the features if the base is undeclared)."""
    base = settings.sources.get(settings.features.base)
    return list(base.primary_key) if base is not None else list(settings.features.feature_columns)
