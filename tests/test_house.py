"""The house stays as drawn: no import cycle, none hidden in an import placed inside a function.

lint-imports (CI) holds the floors; a cycle between two modules of one floor, or one dodged by
importing inside a function, is this test's. Imports inside functions are allowed for start-up
time (the report never pays for JAX), never to break a cycle."""

import ast
from pathlib import Path

import dlrun

PACKAGE = Path(dlrun.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _module_of(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        assert node.level == 0, f"relative import of {node.module}: dlrun imports absolutely"
        # `from package import module` imports the module (as grimp reads it), not the package's
        # __init__, which it would import back
        names = [
            f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
            for alias in node.names
        ]
    else:
        return []
    return [m for m in map(_module_of, (n for n in names if n.startswith("dlrun"))) if m]


def _graph():
    """(imports at module level, imports inside functions) of every dlrun module."""
    top, inner = {}, {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top[name] = {m for node in tree.body for m in _imported(node) if m != name}
        inner[name] = {
            (m, sub.lineno)
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for sub in ast.walk(node)
            for m in _imported(sub)
            if m != name
        }
    return top, inner


def _reaches(graph: dict, start: str, goal: str) -> bool:
    seen, stack = set(), [start]
    while stack:
        name = stack.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            stack.extend(graph.get(name, ()))
    return False


def test_no_module_level_import_cycle():
    top, _ = _graph()
    cycles = sorted(f"{a} <-> {b}" for a in top for b in top[a] if a < b and _reaches(top, b, a))
    assert not cycles, cycles


def test_no_import_inside_a_function_dodges_a_cycle():
    top, inner = _graph()
    dodges = sorted(f"{a}:{line} imports {b}" for a in inner for b, line in inner[a] if _reaches(top, b, a))
    assert not dodges, dodges


def test_the_graph_is_read():  # the two tests above pass vacuously on an empty graph
    top, inner = _graph()
    assert "dlrun.sweep.run" in top and "dlrun.claims" in top["dlrun.sweep.run"]
    assert sum(map(len, inner.values())) > 10
