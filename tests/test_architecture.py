"""The house rules, read from the source (AST), so they hold from now on.

- No import cycle among the modules of ``workbench/`` and ``components/``, counting imports inside
  functions (a function import that dodges a cycle is a cycle).
- ``components`` imports nothing of the application; ``reports`` nothing that loads models or trains;
  ``training`` never the runner.
- No function over 60 lines.
- The run folder's layout (``seed<k>`` folders) is spelled in one module, ``workbench/run_folder.py``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("workbench", "components")


def _modules() -> dict[str, Path]:
    mods = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """Every project module ``module`` imports (at module level or inside functions), resolved to the
    longest module name that exists; a package's import of its own parent is not an edge."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                found.add(name)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _external(path: Path) -> set[str]:
    """Top-level names of the third-party packages a file imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_counting_imports_inside_functions():
    assert _cycles() == []


def _reaches(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for n in GRAPH[todo.pop()]:
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("components")))
def test_components_stand_alone(module):
    assert not {n for n in GRAPH[module] if n.startswith("workbench")}
    assert not _external(MODULES[module]) & {"lightning", "omegaconf", "tensorboard", "yaml", "matplotlib"}


TRAINING_OR_LOADING = ("workbench.training", "workbench.experiment", "workbench.load", "workbench.sample",
                       "workbench.export", "workbench.bench", "workbench.interop", "workbench.post_sweep")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("workbench.reports")))
def test_reports_read_results_only(module):
    """Reports analyse and render results.json: nothing they reach loads a model or trains."""
    reached = _reaches(module)
    assert not {n for n in reached if n.startswith(TRAINING_OR_LOADING)}
    assert not {n for n in reached if n.startswith("components")}
    assert "lightning" not in _external(MODULES[module]) and "torch" not in _external(MODULES[module])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("workbench.training")))
def test_training_never_imports_the_runner(module):
    assert not {n for n in GRAPH[module] if n in ("workbench.experiment", "workbench.post_sweep", "workbench.cli")}


def test_no_function_over_60_lines():
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert long == []


def test_the_run_folder_layout_is_spelled_in_one_module():
    """``seed<k>`` folders are named and found only by workbench/run_folder.py."""
    pattern = re.compile(r"""f["'][^"']*/seed\{|["']seed\*|\bseed\{[a-z_\[\]'".]+\}/|glob\(\s*["']seed""")
    offenders = [f"{path.relative_to(ROOT)}:{i}" for module, path in MODULES.items() if module != "workbench.run_folder"
                 for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
