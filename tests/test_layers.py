"""The library's layers (docs/architecture.md), checked on the source: imports only run downward, the stages are
siblings that never import each other, no import loop (also through imports inside functions), no module over
400 lines, and every exception class in ``errors.py``. The checker is run on a planted tree too, so that it is
known to catch what it looks for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

LIB = ROOT / "lib" / "lakeforge"

# Lowest first. A module may import its own layer or a lower one; a stage only itself and lower layers.
LAYERS: list[set[str]] = [
    {"errors", "liveness", "holdout"},
    {"config"},
    {"jars", "spark", "tables", "paths", "logs"},
    {"models"},
    {"ingest", "features", "train", "score", "monitor", "serve"},  # the stages: siblings
    {"check", "runs", "promotion", "pipeline", "notebooks", "launch", "demo_data", "local_kafka", "cli",
     "commands"},
]
STAGES = LAYERS[4]
MAX_LINES = 400


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The lakeforge modules ``module`` imports anywhere in its body (functions included)."""
    out = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name.startswith("lakeforge"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("lakeforge"):
                continue
            for alias in node.names:  # ``from lakeforge.train import resume`` imports the module train.resume
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in out if m in known} | {m.rsplit(".", 1)[0] for m in out if m not in known and m.rsplit(".", 1)[0] in known}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def analyse(root: Path) -> list[str]:
    """Every violation of the rules above in the package at ``root``."""
    files = {(_module_name(root, p)): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    layer_of = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    graph: dict[str, set[str]] = {}
    problems = []
    for module, path in files.items():
        text = path.read_text()
        tree = ast.parse(text)
        lines = text.count("\n")
        if lines > MAX_LINES:
            problems.append(f"{module}: {lines} lines (more than {MAX_LINES}): split it")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and module != "lakeforge.errors" and any(
                    getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception")) for b in node.bases):
                problems.append(f"{module}: exception class {node.name} outside lakeforge.errors")
        imported = _imports(tree, module, path.name == "__init__.py", known) - {module}
        graph[module] = imported
        top = _top(module)
        if top and top not in layer_of:
            problems.append(f"{module}: top-level module '{top}' is in no layer; add it to LAYERS")
            continue
        for target in sorted(imported):
            other = _top(target)
            if not top or not other or other == top or other not in layer_of:
                continue
            if layer_of[other] > layer_of[top]:
                problems.append(f"{module} imports {target}: upward ({top} is below {other})")
            elif top in STAGES and other in STAGES:
                problems.append(f"{module} imports {target}: stages are siblings and never import each other")
    problems.extend(_cycles(graph))
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append("import loop: " + " -> ".join(stack[stack.index(nxt):] + [node, nxt]))
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_the_library_keeps_its_layers():
    assert analyse(LIB) == []


def test_the_stages_meet_models_only_through_the_models_layer():
    stage_sources = "\n".join(p.read_text() for s in ("train", "score", "monitor") for p in (LIB / s).rglob("*.py"))
    assert "hasattr(" not in stage_sources
    assert "predict_frame" not in stage_sources and "scored_frame" not in stage_sources


def test_deep_package_init_only_re_exports():
    tree = ast.parse((LIB / "train" / "deep" / "__init__.py").read_text())
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Assign"}, kinds


@pytest.fixture
def planted(tmp_path):
    root = tmp_path / "lakeforge"
    for folder in ("train", "score", "models"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "errors.py").write_text("class LakeforgeError(Exception):\n    pass\n")
    return root


def test_the_checker_finds_planted_violations(planted):
    (planted / "models" / "profile.py").write_text("def f():\n    from lakeforge.train import estimator\n")
    (planted / "train" / "estimator.py").write_text("from lakeforge.models import profile\n")
    (planted / "score" / "__init__.py").write_text("from lakeforge.train.estimator import x\n")
    (planted / "score" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (planted / "train" / "checks.py").write_text("class TrainingConfigError(ValueError):\n    pass\n")
    (planted / "odd.py").write_text("")
    assert sorted(analyse(planted)) == sorted([
        "lakeforge.models.profile imports lakeforge.train.estimator: upward (models is below train)",
        "lakeforge.score imports lakeforge.train.estimator: stages are siblings and never import each other",
        "lakeforge.score.big: 401 lines (more than 400): split it",
        "lakeforge.train.checks: exception class TrainingConfigError outside lakeforge.errors",
        "lakeforge.odd: top-level module 'odd' is in no layer; add it to LAYERS",
        "import loop: lakeforge.models.profile -> lakeforge.train.estimator -> lakeforge.models.profile",
    ])
