"""The project's Python has no import circle: in any package, counting imports inside functions too
(they only hide a circle), and the pure session logic imports no I/O."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ev_network", "wallet", "simulator", "core_client", "tools", "scripts", "benchmarks", "tests")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in it, at run time or for type checking)."""
    graph: dict[str, Any] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if any(part.startswith(".") or part == "node_modules" for part in path.relative_to(ROOT).parts):
                continue
            imports: list[tuple[str, set[str]]] = []  # (module, names taken from it)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imports.append((node.module, {alias.name for alias in node.names}))
                elif isinstance(node, ast.Import):
                    imports += [(alias.name, set()) for alias in node.names]
            graph[module_name(path)] = imports
    # `from package import submodule` imports the submodule; `from module import name`, the module
    return {
        m: {f"{i}.{n}" if f"{i}.{n}" in graph else i for i, names in imports for n in names or {""}}
        & graph.keys() - {m}
        for m, imports in graph.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (as a path that ends where it starts), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        for target in sorted(graph[module]):
            if target in path:
                return [*path[path.index(target) :], target]
            if target not in done:
                found = visit(target, [*path, target])
                if found:
                    return found
        done.add(module)
        return None

    for module in sorted(graph):
        if module not in done:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_no_import_circle_in_the_project():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_session_decisions_import_no_io():
    """The pure session logic imports nothing of the link, the store, the chain or the daemon."""
    graph = import_graph()
    io = {
        "core_client.storage.store",
        "core_client.sessions.service",
        "core_client.ocpp.link",
        "core_client.chain.watcher",
    }
    for pure in (
        "core_client.sessions.decisions",
        "core_client.sessions.remote_calls",
        "core_client.sessions.plausibility",
        "core_client.sessions.metering",
        "core_client.sessions.actions",
        "core_client.sessions.machine",
        "core_client.sessions.jobs",
    ):
        assert not graph[pure] & io, (pure, graph[pure] & io)


def test_tests_and_benchmarks_import_no_test_module():
    """Shared harness code lives in tools/harness: a test module imports no other test module, and
    benchmarks and tools import nothing of tests/."""
    graph = import_graph()
    wrong = {
        module: sorted(t for t in targets if t.split(".")[0] == "tests")
        for module, targets in graph.items()
        if module.split(".")[0] in ("tests", "benchmarks", "tools")
    }
    assert not {m: t for m, t in wrong.items() if t}
