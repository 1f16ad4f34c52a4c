"""What the kill-and-rerun tests (test_resume.py) and the process they kill (killed.py) share: a toy gold table
and the settings of a small model trained on it."""

from __future__ import annotations

from pathlib import Path

from lakeforge.config import SearchSettings
from lakeforge.tables import GoldTable
from tests.conftest import settings_for
from tests.support.toy import FEATURES, TOY_SCHEMA, toy_rows

ROWS = 1500


def resume_settings(work: Path):
    base = settings_for(work)
    model = base.model.model_copy(update={"registered_name": "toy_resumed", "min_auc": 0.5,
                                          "search": SearchSettings(strategy="none"),
                                          "params": {"n_estimators": 10, "max_depth": 3}})
    return base.model_copy(update={"features": FEATURES, "model": model})


def gold_table(spark, work: Path) -> GoldTable:
    path = work / "gold"
    if not (path / "_delta_log").exists():
        spark.createDataFrame(toy_rows(ROWS), TOY_SCHEMA).write.format("delta").save(str(path))
    return GoldTable(str(path), 0, ROWS, True, {})
