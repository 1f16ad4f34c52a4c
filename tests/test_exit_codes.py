"""Exit codes that mean something (lakeforge.errors, the README's table): an error lakeforge raises on purpose is
one ``error:`` line and its code; anything else is a bug, shown with its traceback, exit 1. Codes 2 (check),
3 (monitoring alert) and 0 are also asserted where those jobs are tested."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lakeforge.cli import run_job
from lakeforge.config import ConfigError
from lakeforge.logs import fields_of
from lakeforge.errors import (EXIT_CODES, DataQualityError, EnvironmentSetupError, InfrastructureError, InputError,
                              LakeforgeError, MissingInputError)
from lakeforge.tables import GoldTable
from lakeforge.train import train_model
from lakeforge.models.registry import mlflow_client
from tests.conftest import settings_for
from tests.support.jobs import run_in_process
from tests.test_ingest_dirty import _csv, _set, flights_rows  # noqa: F401 - the fixture, reused
from tests.support.toy import FEATURES, TOY_SCHEMA, toy_rows


@pytest.mark.parametrize("error, code", [
    (ConfigError("conf/base.yaml: features.numeric[2]: column 'x' is not in the gold table"), 2),
    (InputError("input /lake/gold (Delta version 3) has no rows; nothing to score"), 2),
    (MissingInputError("no predictions table at /lake/p; run jobs/score.py first"), 2),
    (EnvironmentSetupError("Java 17 or newer is needed"), 2),
    (DataQualityError("batch b: failed expectation(s): few_cancelled: 0.3 (threshold 0.1)"), 5),
    (InfrastructureError("write /lake/x: still conflicting with concurrent writers after 6 attempts"), 1),
])
def test_an_error_raised_on_purpose_is_one_line_with_its_code(error, code, capsys):
    def main():
        raise error

    assert run_job(main) == code
    assert capsys.readouterr().err == f"error: {error}\n"


def test_every_purposeful_error_derives_from_the_base_and_keeps_its_builtin():
    assert issubclass(ConfigError, LakeforgeError) and issubclass(ConfigError, ValueError)
    assert issubclass(MissingInputError, FileNotFoundError) and issubclass(DataQualityError, LakeforgeError)
    assert sorted(EXIT_CODES) == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("bug", [ValueError("bad value"), KeyError("missing"), FileNotFoundError("nowhere"),
                                 ZeroDivisionError("division by zero")])
def test_anything_else_is_a_bug_with_its_traceback_and_exit_1(bug, capsys, caplog):
    def main():
        raise bug

    caplog.set_level(logging.ERROR, logger="lakeforge")
    assert run_job(main) == 1
    assert "error:" not in capsys.readouterr().err
    failed = [r for r in caplog.records if r.getMessage() == "job failed"]
    assert len(failed) == 1 and failed[0].exc_info[1] is bug


def _stage_events(caplog, job: str) -> list[dict]:
    """The job context's ``stage=<job>`` lines, their fields without the seconds."""
    return [{k: v for k, v in fields_of(r).items() if k != "seconds"} for r in caplog.records
            if fields_of(r).get("stage") == job]


def test_a_breached_expectation_exits_5(spark, tmp_path, flights_rows, caplog):  # noqa: F811 - the fixture
    caplog.set_level(logging.INFO, logger="lakeforge")
    header, rows = flights_rows
    settings = settings_for(tmp_path)
    cancelled = [_set(header, r, "arr_delay", "NA") for r in rows[:30]]  # 30% cancelled: few_cancelled breached
    landed = Path(settings.storage.landing) / "flights" / "cancelled.csv"
    landed.parent.mkdir(parents=True)
    landed.write_text(_csv(header, cancelled + rows[30:100]))
    code, _, err = run_in_process(spark, "ingest", settings, "--source", "flights")
    assert code == 5
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "failed expectation(s): few_cancelled: 0.3 (threshold 0.1)" in errors[0]
    assert "Traceback" not in err
    assert _stage_events(caplog, "ingest") == [{"stage": "ingest", "event": "start"},
                                               {"stage": "ingest", "event": "failed", "error": "DataQualityError"}]


def test_a_refused_challenger_exits_4_when_promotion_is_required(spark, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lakeforge")
    gold = str(tmp_path / "gold")
    spark.createDataFrame(toy_rows(1500), TOY_SCHEMA).write.format("delta").save(gold)
    base = settings_for(tmp_path)
    model = base.model.model_copy(update={"min_auc": 0.99, "registered_name": "toy_refused",
                                          "search": base.model.search.model_copy(update={"strategy": "none"}),
                                          "params": {"n_estimators": 5, "max_depth": 2}})
    settings = base.model_copy(update={"features": FEATURES, "model": model})
    trained = train_model(spark, settings, GoldTable(gold, 0, 1500, True, {}), promote="never")
    code, out, _ = run_in_process(spark, "gate", settings, "--require-promotion")
    assert code == 4
    assert '"promoted": false' in out and "is below model.min_auc 0.99" in out
    assert _stage_events(caplog, "gate") == [{"stage": "gate", "event": "start"},
                                             {"stage": "gate", "event": "end", "rows": None, "wrote": None,
                                              "version": trained.model_version, "promoted": False}]
    challenger = mlflow_client(settings.mlflow).get_model_version_by_alias("toy_refused", "challenger")
    assert int(challenger.version) == trained.model_version
    code, _, _ = run_in_process(spark, "gate", settings)  # without --require-promotion a refusal is not a failure
    assert code == 0
