"""The Core Client's fixtures: ``core``, a real daemon in this test's event loop on the test Anvil."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tools.harness.chain import Net
from tools.harness.core import Core, cp_ids, running_core


@pytest.fixture
def core_database(tmp_path: Path) -> Path | str:
    """Where ``core`` keeps its state: a SQLite file (a module that overrides this fixture with
    ``db_location`` runs its tests on both engines)."""
    return tmp_path / "core.sqlite"


@pytest.fixture
async def core(
    request: pytest.FixtureRequest, clean_chain: Net, tmp_path: Path, keyfile: Path, core_database: Path | str
) -> AsyncIterator[Core]:
    """A running Core Client with two registered 2-connector stations, ``core.a`` and ``core.b``. A test
    marked ``@pytest.mark.core_settings(name=value, ...)`` runs it with those settings changed."""
    marker = request.node.get_closest_marker("core_settings")
    overrides = {"database": core_database, **(marker.kwargs if marker else {})}
    a, b = cp_ids("CPA", "CPB")
    async with running_core(clean_chain, tmp_path, keyfile, {a: 2, b: 2}, **overrides) as running:
        running.a, running.b = a, b  # type: ignore[attr-defined]
        yield running
