"""The browser tests' stack and helpers: Debian's headless Chromium (its path and flags), the real apps
on the real Core Client, Anvil and simulated charge points (:func:`web_stack`), a screenshot of each page
of a failing test in build/browser-failures/, with EVN_SCREENSHOTS=DIR :func:`snap`'s phone and desktop
shots, every page checked for a phone's width and console errors (:class:`Watched`), and the wallet app's
account forms as a driver fills them (:func:`create_account`, :func:`unlock`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import expect

from core_client.config import DashboardSettings, LiveSettings, hash_password
from ev_network.web.server import HttpServer
from simulator.charge_point import Behaviour
from tools.devchain import ROOT
from tools.harness.core import Core, cp_ids, running_core
from tools.harness.wallet import wallet_config
from wallet.web import create_app

CHROMIUM = os.environ.get("EVN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}
DASHBOARD_PASSWORD = "dashboard password of the CPO"
FAILURES = ROOT / "build" / "browser-failures"
# 11 kW in real time (the power the pages show is the station's), a MeterValues every second (about 3 Wh)
CHARGING = Behaviour(power_w=11_000, meter_interval_s=1, time_accel=1)


@dataclass
class WebStack:
    core: Core
    cp: str
    wallet_url: str
    live_url: str
    dashboard_url: str


@contextlib.asynccontextmanager
async def web_stack(net: Any, tmp_path: Path, keyfile: Path) -> AsyncIterator[WebStack]:
    """A Core Client with one 2-connector station and a charging simulator, serving its live data and
    dashboard ([live] and [dashboard] in its config), and the driver's web app with a fresh wallet home:
    each on a free port."""
    (cp,) = cp_ids("WEB")
    live = LiveSettings(port=0, poll_interval_s=0.2)
    dashboard = DashboardSettings(port=0, password=hash_password(DASHBOARD_PASSWORD))
    async with running_core(net, tmp_path, keyfile, {cp: 2}, live=live, dashboard=dashboard) as core:
        live_url, dashboard_url = (core.daemon.front_ends[name].url for name in ("live", "dashboard"))
        wallet = HttpServer(create_app(wallet_config(net, tmp_path / "wallet-home"), live_url), "127.0.0.1", 0)
        await wallet.start()
        await core.connect(cp, CHARGING)
        try:
            yield WebStack(core, cp, wallet.url, live_url, dashboard_url)
        finally:
            await wallet.stop()


@contextlib.asynccontextmanager
async def screenshots_on_failure(name: str, pages: list[Any]) -> AsyncIterator[None]:
    """On an exception, save a screenshot of every page in ``pages`` (build/browser-failures/)."""
    try:
        yield
    except BaseException:
        FAILURES.mkdir(parents=True, exist_ok=True)
        for i, page in enumerate(pages):
            with contextlib.suppress(Exception):
                path = FAILURES / f"{name}-{i}.png"
                await page.screenshot(path=str(path), full_page=True)
                print(f"screenshot of the failing page {page.url}: {path}")
        raise


class Watched:
    """A page and what went wrong on it: console errors and uncaught exceptions, except the failed load
    the browser logs for a page whose own HTTP status is an error (a refused form is meant to be 4xx)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: Any) -> None:
        own_status = message.text.startswith("Failed to load resource") and message.location.get("url") == self.page.url
        if message.type == "error" and not own_status:
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    async def looks_right(self) -> None:
        """Nothing wider than the 390 px phone (no sideways scrolling) and no console error so far."""
        await self.page.wait_for_load_state("load")
        width = await self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{self.page.url} is {width} px wide on a {PHONE['width']} px phone"
        assert not self.errors, f"console errors on {self.page.url}: {self.errors}"


async def watched_page(browser: Any, **options: Any) -> Watched:
    """A new phone-sized page in its own browser context (its own cookies), watched for errors."""
    context = await browser.new_context(viewport=PHONE, **options)
    return Watched(await context.new_page())


async def create_account(driver: Watched, password: str) -> None:
    """The wallet app's Create account form sent with ``password`` twice: created and unlocked, the page right."""
    page, create = driver.page, driver.page.locator("#create")
    await create.get_by_label("New password").fill(password)
    await create.get_by_label("Repeat it").fill(password)
    await create.get_by_role("button", name="Create account").click()
    await expect(page.locator(".notice")).to_contain_text("created and unlocked")
    await driver.looks_right()


async def unlock(driver: Watched, password: str) -> None:
    """The wallet app's Unlock form: a wrong password first, refused (the page right), then ``password`` sent."""
    form = driver.page.locator("#unlock")
    await form.get_by_label("Password").fill("not the password")
    await form.get_by_role("button", name="Unlock").click()
    await expect(driver.page.locator(".error")).to_contain_text("wrong password")
    await driver.looks_right()
    await form.get_by_label("Password").fill(password)
    await form.get_by_role("button", name="Unlock").click()


async def snap(page: Any, name: str) -> None:
    """With EVN_SCREENSHOTS=DIR: ``DIR/<name>-phone.png`` (390x844) and ``DIR/<name>-desktop.png``."""
    target = os.environ.get("EVN_SCREENSHOTS")
    if not target:
        return
    Path(target).mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(Path(target) / f"{name}-phone.png"))
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=str(Path(target) / f"{name}-desktop.png"))
    await page.set_viewport_size(PHONE)
