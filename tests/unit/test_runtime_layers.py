"""The device runtime's modules form layers: no import cycle among them, counting the imports inside
functions (a cycle closed by a function-level import is still a cycle), and no module over 500
lines. docs/architecture.md lists the layer order this enforces."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "edgebench_runtime"
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _package_of(name: str, path: Path) -> str:
    """The package a module's relative imports are relative to."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _resolve(base: str, level: int, module: str | None) -> str:
    parts = base.split(".")
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    anchor = ".".join(parts)
    return f"{anchor}.{module}" if module else anchor


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The runtime modules one module imports, anywhere in its body (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = _resolve(_package_of(name, path), node.level, node.module)
            else:
                target = node.module or ""
            # `from . import x` names a submodule when one exists, else an attribute of the package.
            targets = [
                f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            # `import edgebench_runtime.a.b` loads the deepest runtime module it names.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as the list of modules around it (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path; 2: finished, no cycle through it
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "edgebench_runtime.vocabulary" in graph["edgebench_runtime.plan"]  # top-level, relative
    assert "edgebench_runtime.supervisor" in graph["edgebench_runtime.cli"]  # inside a function
    assert "edgebench_runtime.imaging" in graph["edgebench_runtime.tasks.base"]  # `..imaging`
    assert "edgebench_runtime" in graph["edgebench_runtime.cli"]  # `from . import __version__`


def test_find_cycle_reports_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_among_runtime_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in the runtime: " + " -> ".join(cycle)


def test_no_runtime_module_over_500_lines():
    too_long = {}
    for name, path in _modules().items():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            too_long[name] = lines
    assert not too_long, f"runtime modules over {MAX_LINES} lines: {too_long}"
