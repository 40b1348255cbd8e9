"""The floors' import rules (README, Design): no cycles, nothing imports upwards."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ("pipelines", "transforms", "schemas")  # folders, installed as wirestream.<floor>
PACKAGES = tuple(f"wirestream.{floor}" for floor in FLOORS)


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(("wirestream", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def imported_names(path: Path) -> list[str]:
    """Every module name PATH imports (absolute imports), at the top or inside a function."""
    names = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # "from wirestream.transforms.io import files" imports the module wirestream.transforms.io.files
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports, at the top or inside a function."""
    paths = [p for floor in FLOORS for p in (root / floor).rglob("*.py")]
    modules = {module_name(p, root) for p in paths}
    return {module_name(p, root): {t for t in imported_names(p) if t in modules} - {module_name(p, root)}
            for p in paths}


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


def test_the_graph_holds_the_project_s_imports():
    graph = import_graph(ROOT)
    assert "wirestream.schemas" in graph["wirestream.transforms.normalise"]
    assert "wirestream.pipelines.graph" in graph["wirestream.pipelines.cli"]


@pytest.mark.parametrize("within", [("wirestream.transforms.io",), ("wirestream.schemas",), PACKAGES])
def test_no_import_cycle(within):
    assert cycles(import_graph(ROOT), within) == []


def test_lower_floors_do_not_import_upper_ones():
    graph = import_graph(ROOT)
    upward = {(m, t) for m, targets in graph.items() for t in targets
              if (m.startswith("wirestream.transforms") and t.startswith("wirestream.pipelines"))
              or (m.startswith("wirestream.schemas") and not t.startswith("wirestream.schemas"))}
    assert upward == set()


@pytest.mark.parametrize("tree", [*FLOORS, "tests", "benchmarks", "deploy"])
def test_nothing_imports_a_floor_by_its_folder_name(tree):
    """From a checkout, ``import transforms`` would work (the folder is on the path) and
    break once installed, where another distribution may own the name."""
    bare = {(p.relative_to(ROOT).as_posix(), name) for p in (ROOT / tree).rglob("*.py")
            for name in imported_names(p) if name.split(".")[0] in FLOORS}
    assert bare == set()


def test_the_check_sees_a_cycle():
    graph = {"wirestream.transforms.io.a": {"wirestream.transforms.io.b"}, "wirestream.transforms.io.b": {"wirestream.transforms.io.a"}}
    assert cycles(graph, ("wirestream.transforms.io",)) == [["wirestream.transforms.io.a", "wirestream.transforms.io.b",
                                                  "wirestream.transforms.io.a"]]
