"""The notebooks run headless, in order, on a 1-in-50 sample of the demo flights in a lakehouse of their own
(nbclient; one kernel, and so one local[2] Spark session, for the four), and are committed without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import deltalake
import nbformat
import pytest

from tests.conftest import ROOT, TEST_PII_KEY

NOTEBOOK_DIR = ROOT / "notebooks"
ORDER = ("01_explore_data", "02_train_and_tune", "03_evaluate_and_compare", "04_score_and_monitor")
SAMPLE_EVERY = 50
SAMPLE_FLIGHTS = 6736  # ceil(336,776 / 50)
MAX_EVALS = 3
# Per notebook: the parameters the test sets (on top of ENV and LAKEHOUSE_ROOT), and the plots it must draw.
PARAMETERS = {
    "01_explore_data": {"SAMPLE_EVERY": SAMPLE_EVERY, "PLOT_ROWS": 3000},
    "02_train_and_tune": {"SEARCH": {"max_evals": MAX_EVALS, "parallelism": 2, "no_progress_evals": None},
                          "PARAMS": {"n_estimators": 30}, "PROMOTE": "always"},
    "03_evaluate_and_compare": {"CHALLENGER_PARAMS": {"max_depth": 3, "n_estimators": 15}},
    "04_score_and_monitor": {},
}
PLOTS = {"01_explore_data": 4, "02_train_and_tune": 3, "03_evaluate_and_compare": 2, "04_score_and_monitor": 3}


def _read(name: str):
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def _parameters_cell(nb):
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", []), "the first code cell must be tagged parameters"
    return code[0]


def test_notebooks_are_the_four_in_order_and_committed_without_outputs():
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == list(ORDER)
    for name in ORDER:
        nb = _read(name)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip the outputs before committing"
        assert "widgets" not in nb.metadata, name
        params = _parameters_cell(nb).source
        assert 'ENV = "local"' in params and "LAKEHOUSE_ROOT = None" in params and "CONF_DIR = None" in params, name
        for key in PARAMETERS[name]:
            assert f"\n{key} = " in f"\n{params}", f"{name} has no parameter {key}"


def _executed(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


# Run before each notebook's parameters: the names an earlier notebook defined are removed (the kernel's own, and
# IPython's underscore names, stay). IPython's %reset also removes __main__'s __spec__, which pyspark reads.
FRESH_NAMESPACE = (
    "_kernel_names = globals().setdefault('__kernel_names__', set(globals()) | {'__kernel_names__'})\n"
    "[globals().pop(_name) for _name in list(globals()) if _name not in _kernel_names and not _name.startswith('_')]\n"
    "del _kernel_names\n")


def run_notebooks(values: dict[str, dict]) -> dict:
    """Run the named notebooks in order, ``values[name]`` assigned after their parameters cell's defaults; returns
    {name: executed notebook}. They share one kernel, and so one local[2] Spark session, as notebooks attached to
    one cluster do; each starts without the names the others defined (``FRESH_NAMESPACE``), so that none uses
    what another defined."""
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    patch = pytest.MonkeyPatch()
    patch.setenv("LAKEFORGE_PII_KEY", TEST_PII_KEY)
    patch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    kernel = KernelManager(kernel_name="python3")
    results = {}
    try:
        kernel.start_kernel(cwd=str(NOTEBOOK_DIR))
        for name, parameters in values.items():
            nb = _read(name)
            cell = _parameters_cell(nb)  # the defaults, then the test's values (as papermill injects them)
            assigned = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
            cell.source = f"{FRESH_NAMESPACE}{cell.source}\n{assigned}"
            NotebookClient(nb, km=kernel, timeout=300, resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()
            results[name] = nb
    finally:
        if kernel.has_kernel:
            kernel.shutdown_kernel(now=True)
        patch.undo()
    return results


def plots_and_errors(nb) -> tuple[int, list]:
    outputs = _executed(nb)
    return (len([o for o in outputs if "image/png" in o.get("data", {})]),
            [o for o in outputs if o.output_type == "error"])


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Each notebook run once, in order, sharing one temporary lakehouse; returns (lakehouse, {name: notebook})."""
    root = tmp_path_factory.mktemp("notebooks")
    values = {name: {"ENV": "local", "LAKEHOUSE_ROOT": str(root), **PARAMETERS[name]} for name in ORDER}
    return root, run_notebooks(values)


def test_every_notebook_runs_and_draws_its_plots(executed):
    _, notebooks = executed
    for name in ORDER:
        plots, errors = plots_and_errors(notebooks[name])
        assert not errors, name
        assert plots >= PLOTS[name], f"{name}: {plots} plots"


def test_the_notebooks_built_the_sample_lakehouse(executed):
    from lakeforge.notebooks import notebook_settings, registered_versions

    root, notebooks = executed
    lakehouse = root / "lakehouse"

    def table(*parts):  # read with delta-rs: no second JVM in the test process
        return deltalake.DeltaTable(str(lakehouse.joinpath(*parts))).to_pandas()

    assert len(table("silver", "flights")) == SAMPLE_FLIGHTS
    versions = registered_versions(notebook_settings("local", root, conf_dir=ROOT / "conf"))
    champion = int(versions[versions["aliases"].str.contains("champion")]["version"].iloc[0])
    predictions = table("predictions", "flight_delay_predictions")
    assert len(predictions) == SAMPLE_FLIGHTS and set(predictions["model_version"]) == {champion}
    monitoring = table("monitoring", "monitoring_metrics")
    assert set(monitoring.loc[monitoring["metric"] == "psi", "feature"]) >= {"carrier", "distance", "probability"}
    texts = "\n".join(o.get("text", "") for o in _executed(notebooks["04_score_and_monitor"]) if o.output_type == "stream")
    assert f"scored {SAMPLE_FLIGHTS:,} rows with lakeforge_flight_delay v{champion}" in texts


def test_trials_and_the_gate_reach_mlflow(executed):
    from lakeforge.notebooks import notebook_settings, registered_versions, trial_history

    root, notebooks = executed
    settings = notebook_settings("local", root, conf_dir=ROOT / "conf")
    versions = registered_versions(settings)
    assert list(versions["version"]) == [2, 1]
    assert versions["aliases"].str.contains("champion").sum() == 1
    trials = trial_history(settings, versions.set_index("version").loc[1]["run_id"])  # v1: 02's search
    assert len(trials) == MAX_EVALS and (trials["status"] == "ok").all()
    assert trials["validation_auc"].between(0.5, 1.0).all()
    gate = [o for o in _executed(notebooks["03_evaluate_and_compare"]) if "text/plain" in o.get("data", {})]
    decision = gate[-1]["data"]["text/plain"]
    assert "version" in decision and "promoted" in decision and "challenger_score" in decision
    from lakeforge.models.registry import mlflow_client

    run = mlflow_client(settings.mlflow).get_run(versions.set_index("version").loc[2]["run_id"])
    # the gate step's decision replaced the one training logged with --promote never
    logged = json.loads(Path(run.info.artifact_uri.removeprefix("file://"), "registry_gate.json").read_text())
    assert (logged["version"], logged["promote"]) == (2, "gate")
    assert run.data.tags["gate_reason"] == logged["reason"] != "promotion disabled (--promote never)"
    assert run.data.tags["promoted"] == str(logged["promoted"]).lower()
    assert ("champion" in versions.set_index("version").loc[2]["aliases"]) == logged["promoted"]
