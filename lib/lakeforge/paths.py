"""Where every lakehouse table and folder of one environment lives: one function per location, each computed from
the settings alone (no I/O), so that a stage finds what another stage wrote without importing it.

| location | function |
|---|---|
| ``bronze/<source>``, ``silver/<source>``, ``quarantine/<source>`` | ``bronze_path``, ``silver_path``, ``quarantine_path`` |
| ``quality/dq_metrics`` | ``dq_metrics_path`` |
| ``_checkpoints/<source>`` (a stream's checkpoint) | ``stream_checkpoint_path`` |
| ``gold/<features.table>`` | ``gold_path`` |
| ``predictions/<score.table>`` | ``predictions_path`` |
| ``monitoring/<monitor.table>``, ``monitoring/reports/...`` | ``monitor_path``, ``report_path`` |
| ``operations/job_runs`` | ``job_runs_path`` |
| ``checkpoints/<model>/<identity>`` (the torch network's) | ``training_checkpoint_path`` |
| ``search/`` (Optuna studies) | ``search_folder`` |

``entity_key`` is here too: the columns that name one row of the gold table, and so of the predictions and
monitoring tables built from it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lakeforge.config import Settings


def bronze_path(settings: Settings, source: str) -> str:
    return settings.storage.table_path("bronze", source)


def silver_path(settings: Settings, source: str) -> str:
    return settings.storage.table_path("silver", source)


def quarantine_path(settings: Settings, source: str) -> str:
    return settings.storage.table_path("quarantine", source)


def dq_metrics_path(settings: Settings) -> str:
    return settings.storage.table_path("quality", "dq_metrics")


def stream_checkpoint_path(settings: Settings, source: str) -> str:
    return settings.storage.table_path("_checkpoints", source)


def gold_path(settings: Settings) -> str:
    return settings.storage.table_path("gold", settings.features.table)


def predictions_path(settings: Settings) -> str:
    return settings.storage.table_path("predictions", settings.score.table)


def monitor_path(settings: Settings) -> str:
    return settings.storage.table_path("monitoring", settings.monitor.table)


def report_path(settings: Settings, model_name: str, model_version: int, batch_id: str, source_table: str,
                source_version: int) -> str:
    """The HTML report of one monitored batch."""
    slug = f"{Path(source_table.rstrip('/')).name}_v{source_version}_{hashlib.sha1(batch_id.encode()).hexdigest()[:8]}"
    return f"{settings.storage.table_path('monitoring', 'reports')}/{model_name}/v{model_version}/{slug}.html"


def job_runs_path(settings: Settings) -> str:
    return settings.storage.table_path("operations", "job_runs")


def training_checkpoint_path(settings: Settings, identity: dict[str, Any]) -> str:
    """The durable checkpoint folder of one training identity (data version, config, params): a rerun of the
    same training finds the checkpoints of the run that failed."""
    base = settings.model.deep.checkpoint_dir or f"{settings.storage.root.rstrip('/')}/checkpoints"
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{base.rstrip('/')}/{settings.model.registered_name}/{digest}"


def search_folder(settings: Settings) -> str:
    """Where searches keep their state (an Optuna study per training identity) under the lakehouse root."""
    return f"{settings.storage.root.rstrip('/')}/search"


def entity_key(settings: Settings) -> list[str]:
    """The columns naming one gold row: the base source's primary key (the features if the base is undeclared)."""
    base = settings.sources.get(settings.features.base)
    return list(base.primary_key) if base is not None else list(settings.features.feature_columns)
