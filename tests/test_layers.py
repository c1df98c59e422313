"""The package layout as a rule: imports point down, and no module imports itself back.

Every import in xmd_cli (function-local ones too, which hide circles from Python)
is read with `ast`. A package may import only packages of a lower layer; two
packages on one layer may not import each other, so no circle can form between
packages. Within a package, modules may import each other but not in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "xmd_cli"

# Lowest first. A unit is a top-level module or subpackage of xmd_cli ("xmd_cli" is its __init__).
LAYERS = [
    {"xmd_cli", "errors", "vocab"},
    {"registry", "console", "io", "plotting", "safe_yaml", "provenance"},
    {"recipe"},
    {"recipe_files"},
    {"data", "shards"},
    {"metrics", "models"},
    {"training"},
    {"inference"},
    {"teachers", "quality"},
    {"diagnose"},
    {"stages"},
    {"cli"},
    {"__main__"},
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "xmd_cli"


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every xmd_cli module `path` imports, at any depth of the code.

    `from xmd_cli.pkg import sub` counts as importing xmd_cli.pkg.sub when sub is a module.
    """
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("xmd_cli"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("xmd_cli"):
                submodules = {f"{target}.{alias.name}" for alias in node.names} & modules
                found.update(submodules or {target})
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: imports_of(path, set(modules)) - {name} for name, path in modules.items()}


def test_every_unit_has_a_layer():
    units = {unit_of(name) for name in graph()}
    assert units <= set(RANK), f"add {sorted(units - set(RANK))} to LAYERS in tests/test_layers.py"


def test_imports_point_down():
    upward = []
    for module, targets in graph().items():
        for target in targets:
            a, b = unit_of(module), unit_of(target)
            if a != b and RANK.get(b, -1) >= RANK.get(a, -1):
                upward.append(f"{module} -> {target} ({a} is layer {RANK.get(a)}, {b} is layer {RANK.get(b)})")
    assert not upward, "imports that do not point down:\n  " + "\n  ".join(sorted(upward))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_module_imports_itself_back():
    edges = graph()
    # `from xmd_cli.pkg import name` names the package; a package's __init__ importing its
    # own submodules is how a package is built, not a circle, so edges into a module's own
    # ancestors are left out.
    edges = {m: {t for t in ts if t in edges and not m.startswith(t + ".")} for m, ts in edges.items()}
    cycle = find_cycle(edges)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
])
def test_cycle_finder(edges, expected):
    assert find_cycle(edges) == expected
