"""The layers: imports run one way (CLI/flows → pipeline → models) and no module imports itself back.

Every import statement counts, also those inside functions (the lazy imports that keep the CLI fast), and so
does every string that names a project module or a ``"module:attribute"`` in it (the registry of domains,
the declarations' lazy references, ``importlib.import_module`` arguments); ``from package import name``
counts as an import of the submodule when ``name`` is one.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import PROJECT_ROOT

PACKAGES = ("models", "pipeline", "flows")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (anywhere in its body)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(parent + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                module = node.value.partition(":")[0]
                if module in modules:  # a lazy reference by name
                    targets = [module]
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved and resolved != name:
                    graph[name].add(resolved)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for vertex in sorted(graph):
        if vertex not in index:
            visit(vertex)
    return found


def test_imports_run_one_way() -> None:
    """Nothing in pipeline/ or models/ imports flows/, and nothing in models/ imports pipeline/."""
    graph = import_graph()
    upward = sorted((a, b) for a, targets in graph.items() for b in targets
                    if (a.startswith(("pipeline", "models")) and b.startswith("flows"))
                    or (a.startswith("models") and b.startswith("pipeline")))
    assert not upward, upward


def test_no_import_cycles() -> None:
    assert _cycles(import_graph()) == []


def test_the_checker_sees_lazy_imports_and_cycles() -> None:
    """The walker is not blind: it sees the CLI's lazy imports and finds a planted cycle."""
    graph = import_graph()
    assert "pipeline.cli.verbs" in graph["pipeline.cli"]  # imported inside load_commands()
    assert "pipeline.weather.domain" in graph["pipeline.domains"]  # the registry names it
    assert "pipeline.weather.modeling.train" in graph["pipeline.weather.domain"]  # "module:attribute" references
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
