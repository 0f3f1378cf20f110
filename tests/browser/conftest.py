"""Browser tests: Debian's headless Chromium driven by Playwright (its own browser download is not
available here, so it launches the system browser), against the real apps on the real Core Client,
Anvil and simulated charge points (tools/harness/browser.py). A failing test leaves a screenshot of each
of its pages in build/browser-failures/; with EVN_SCREENSHOTS=DIR, ``snap`` saves phone and desktop shots.
Every page a test shows is checked (``Watched.looks_right``): it fits a 390 px phone and has logged no
console error."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tools.devchain import ROOT
from tools.harness.browser import CHROMIUM, CHROMIUM_ARGS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Install the browser when it is missing (tools/setup_browser.sh: apt-get as root), once."""
    if any("tests/browser" in str(item.path) for item in items) and not os.access(CHROMIUM, os.X_OK):
        subprocess.run([str(ROOT / "tools" / "setup_browser.sh")], check=False)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: run tools/setup_browser.sh (as root it installs Debian's chromium)")
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
