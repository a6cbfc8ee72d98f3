"""The shape of the house, held by a test: the engine imports neither the service nor the jobs, its stage
packages import only downward (the pipeline read bottom-up), and no module imports itself back in a cycle.
Every import counts, also those inside functions."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENGINE = REPO / "hat_engine"
# The pipeline bottom-up. A package may import its own floor and those below, never above.
OUTSIDE = ("service", "search_jobs", "bench", "tests")
FLOORS = ["", "data", "model", "runtime", "train", "latency", "search", "catalog", "serving"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _graph(folders: list[str]) -> dict[str, set[str]]:
    modules = {_module_name(p): p for folder in folders for p in (REPO / folder).rglob("*.py")}
    return {name: {i for i in _imports(path) if i in modules and i != name} for name, path in modules.items()}


def _floor(module: str) -> int:
    parts = module.split(".")
    package = parts[1] if len(parts) > 2 or (len(parts) == 2 and (ENGINE / parts[1]).is_dir()) else ""
    return FLOORS.index(package)


def test_the_engine_imports_neither_the_service_nor_the_jobs():
    offenders = {
        _module_name(p): sorted(
            i for i in _imports(p) if i.split(".")[0] in ("service", "search_jobs", "bench", "tests")
        )
        for p in ENGINE.rglob("*.py")
    }
    assert not {m: i for m, i in offenders.items() if i}


def test_stage_packages_import_only_downward():
    upward = [
        f"{module} (floor {FLOORS[_floor(module)] or 'root'}) imports {imported}"
        for module, imports in _graph(["hat_engine"]).items()
        for imported in imports
        if _floor(imported) > _floor(module)
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("folders", [["hat_engine", "search_jobs", "service", "harness", "bench", "tests"]])
def test_no_import_cycle_anywhere(folders):
    graph = _graph(folders)
    # a package's __init__ importing its own modules is not a cycle of the code's design
    graph = {
        m: {i for i in deps if not m.startswith(i + ".") and not i.startswith(m + ".")} for m, deps in graph.items()
    }
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_engine_module_is_over_400_lines():
    long = {_module_name(p): n for p in ENGINE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 420}
    assert not long


def test_bench_and_tests_share_only_through_harness():
    """What both use lives in the importable `harness` package; neither reaches into the other or sys.path."""
    crossings = []
    for folder, other in (("bench", "tests"), ("tests", "bench"), ("harness", "tests"), ("harness", "bench")):
        for p in (REPO / folder).rglob("*.py"):
            bad = sorted(i for i in _imports(p) if i.split(".")[0] == other)
            if bad or (p != Path(__file__) and "sys.path.insert" in p.read_text()):
                crossings.append(f"{p.relative_to(REPO)}: {bad or 'sys.path.insert'}")
    assert not crossings, "\n".join(crossings)
