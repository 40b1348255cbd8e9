"""The floors' import rules (README, Design): no cycles, nothing imports upwards."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "transforms", "schemas")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports, at the top or inside a function."""
    paths = [p for package in PACKAGES for p in (root / package).rglob("*.py")]
    modules = {module_name(p, root) for p in paths}
    graph = {}
    for path in paths:
        name = module_name(path, root)
        imported = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # "from wirestream.transforms.io import files" imports the module wirestream.transforms.io.files
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            imported |= {t for t in targets if t in modules and t != name}
        graph[name] = imported
    return graph


def cycles(graph: dict[str, set[str]], within: tuple[str, ...]) -> list[list[str]]:
    """Import cycles among the modules under WITHIN (a package's __init__ importing
    its own modules is not a cycle: Python runs it first)."""
    inside = {m for m in graph if m.startswith(within)}
    found, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module] & inside):
            if module.startswith(target + "."):  # a module importing its own package
                continue
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(inside):
        if module not in state:
            visit(module, [module])
    return found


@pytest.mark.parametrize("within", [("wirestream.transforms.io",), ("schemas",), PACKAGES])
def test_no_import_cycle(within):
    assert cycles(import_graph(ROOT), within) == []


def test_lower_floors_do_not_import_upper_ones():
    graph = import_graph(ROOT)
    upward = {(m, t) for m, targets in graph.items() for t in targets
              if (m.startswith("transforms") and t.startswith("pipelines"))
              or (m.startswith("schemas") and not t.startswith("schemas"))}
    assert upward == set()


def test_the_check_sees_a_cycle():
    graph = {"wirestream.transforms.io.a": {"wirestream.transforms.io.b"}, "wirestream.transforms.io.b": {"wirestream.transforms.io.a"}}
    assert cycles(graph, ("wirestream.transforms.io",)) == [["wirestream.transforms.io.a", "wirestream.transforms.io.b",
                                                  "wirestream.transforms.io.a"]]
