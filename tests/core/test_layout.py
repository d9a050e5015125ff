"""The house rules of the import graph: floors import downwards only, domains never import each other,
no module-level import cycles, and every domain speaks the same file vocabulary."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGES = ("core", "nlp", "vision", "speech")
DOMAINS = ("nlp", "vision", "speech")
FLOORS = {"core.nn": 0, "core.train": 1, "core.report": 2, "core.export": 2, "core.serve": 3}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """Modules of this project that ``path`` imports (``top_level_only``: not inside functions)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return {m for m in out if m.split(".")[0] in PACKAGES}


GRAPH = {_module(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _floor(module: str) -> int | None:
    return next((f for prefix, f in FLOORS.items() if module == prefix or module.startswith(prefix + ".")), None)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_downwards(module):
    for dep in _imports(GRAPH[module], top_level_only=False):
        top, dep_top = module.split(".")[0], dep.split(".")[0]
        if top == "core":
            assert dep_top == "core", f"{module} imports the domain module {dep}"
            assert _floor(dep) is None or _floor(dep) <= (_floor(module) or 0), f"{module} imports higher {dep}"
        else:
            assert dep_top in ("core", top), f"domain {module} imports another domain's {dep}"


def test_core_nn_needs_only_torch():
    allowed = {"torch", "timm", "core", "__future__"} | set(sys.stdlib_module_names)
    for module, path in GRAPH.items():
        if _floor(module) == 0:
            tree = ast.parse(path.read_text())
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert {n.split(".")[0] for n in names} <= allowed, (module, names)


def test_no_module_level_import_cycles():
    edges = {m: {d for d in _imports(p, top_level_only=True) if d in GRAPH} for m, p in GRAPH.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in edges[m]:
            assert state.get(d) != 1, "import cycle: " + " -> ".join([*stack, m, d])
            if d not in state:
                visit(d, [*stack, m])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])


@pytest.mark.parametrize("domain", DOMAINS)
def test_domain_vocabulary(domain):
    """Same file names for the same roles: models, tasks, data, predict, plots, export graphs, demo."""
    d = ROOT / domain
    for role in ("models.py", "tasks.py", "predict.py", "plots.py", "graphs.py", "demo.py", "data/__init__.py"):
        assert (d / role).is_file(), f"{domain}/{role}"
