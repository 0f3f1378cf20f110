"""Every page of the driver's app in each of its states, and of the CPO dashboard, on a 390 px phone:
nothing wider than the screen, no console error (the favicon included). The journey (test_journey.py) checks the same on the
pages it passes, with the Core Client's live data and the CPO dashboard; here the app runs on the chain
alone and the operator's side is driven with its transactions, to reach every state quickly."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

from eth_account import Account
from playwright.async_api import expect

from core_client.config import DashboardSettings, Settings, hash_password
from core_client.sessions.jobs import JobKind, SettleArgs
from core_client.sessions.machine import SessionRecord, State
from core_client.sessions.service import SessionService
from core_client.storage.store import Store
from core_client.web import ServiceDashboardSource, create_dashboard_app
from ev_network.contracts import CancelReason
from ev_network.pricing import Tariff
from ev_network.session_ids import make_session_id, parse_session_id
from ev_network.web.server import HttpServer
from tools.harness.browser import create_account, screenshots_on_failure, unlock, watched_page
from tools.harness.held import BEYOND_THE_CONNECTOR, held_session_live
from tools.harness.wallet import PASSWORD, funded_wallet, operator_settle, operator_start, wallet_config
from wallet.web import create_app

LONG_ID = "CP-PAGES-BERLIN-0001"  # a long charge point id (OCPP allows 20 characters here)
TOKEN = 10**18


async def test_every_page_of_the_drivers_app_fits_a_phone_without_console_errors(clean_chain, tmp_path: Path, browser):
    net = clean_chain
    station = net.add_station(LONG_ID, 2)  # no Core Client: the operator's side is driven below
    home = tmp_path / "a-wallet-home-in-a-folder-with-a-rather-long-name" / "of-its-own"
    app = HttpServer(create_app(wallet_config(net, home)), "127.0.0.1", 0)
    await app.start()
    driver = await watched_page(browser)
    page, url = driver.page, app.url
    try:
        async with screenshots_on_failure("pages", [page]):
            await page.goto(url + "/")
            await expect(page.locator("h2")).to_have_text("Create your wallet")
            await driver.looks_right()
            for _ in range(2):  # two accounts: the unlock form offers a choice of long addresses
                await create_account(driver, PASSWORD)
                await page.get_by_role("button", name="Lock").click()
            await expect(page.locator("#unlock select")).to_be_visible()
            await driver.looks_right()
            await unlock(driver, PASSWORD)
            await page.locator("#topup").get_by_role("button", name="Top up").click()
            await expect(page.locator(".notice")).to_contain_text("topped up")
            await driver.looks_right()

            await page.get_by_role("link", name="Cards").click()  # linked, listed, revoked (issue 20)
            await expect(page.locator("#cards")).to_contain_text("no cards linked yet")
            await driver.looks_right()
            form = page.locator("#add-card")
            await form.get_by_label("Card uid").fill("04A2B3C4D5E6F7A8B9C0")  # the longest idTag
            await form.get_by_label("Name").fill("the card in the blue wallet")
            await form.get_by_role("button", name="Link card").click()
            await expect(page.locator(".notice")).to_contain_text("Give the operator its grant: evcard:")
            await expect(page.locator("#cards .badge")).to_have_text("active")
            await driver.looks_right()
            await page.locator("#cards").get_by_role("button", name="Revoke").click()
            await expect(page.locator(".notice")).to_contain_text("revoked")
            await driver.looks_right()

            await page.get_by_role("link", name="Stations").click()
            card = page.locator(f"#station-{LONG_ID}")
            await page.get_by_role("button", name="Quote").click()
            await expect(page.locator("#quote-total")).to_be_visible()
            await driver.looks_right()
            await card.get_by_label("Deposit").fill("5")
            await card.get_by_role("button", name="Start charging").click()
            await expect(page.locator("#phase")).to_have_text("requested")
            await expect(page.locator("main")).to_contain_text(re.compile(r"cancel possible in [1-5] min, if"))
            await driver.looks_right()
            session_id = parse_session_id(re.search(r"0x[0-9a-f]{64}", page.url).group(0))

            operator_start(net, session_id)
            await page.reload()
            await expect(page.locator("#phase")).to_have_text("charging")
            await expect(page.locator("main")).to_contain_text(
                re.compile(r"reclaim possible in (25 h|24 h \d+ min) if")
            )
            await driver.looks_right()
            await page.get_by_role("button", name="Stop charging").click()
            await expect(page.locator("main")).to_contain_text("stop requested")
            await driver.looks_right()
            operator_settle(net, session_id, 12_345)
            await expect(page.locator("#phase")).to_have_text("settled", timeout=15_000)  # the page follows
            await expect(page.locator("main")).not_to_contain_text("stop requested")
            await driver.looks_right()
            await page.locator("#invoice-link").click()
            await expect(page.locator("#invoice-total")).to_be_visible()
            await driver.looks_right()

            await page.get_by_role("link", name="History").click()
            await expect(page.locator("#history")).to_contain_text(LONG_ID)
            await driver.looks_right()
            await page.goto(f"{url}/sessions/{session_id + 1:#066x}")  # the next session id: none yet
            await expect(page.locator(".error")).to_be_visible()
            await driver.looks_right()
            await page.goto(f"{url}/sessions/not-a-session")
            await expect(page.locator(".error")).to_be_visible()
            await driver.looks_right()
            stranger = await watched_page(browser)  # someone who has not unlocked: a browser of its own
            await stranger.page.goto(f"{url}/stations")
            await expect(stranger.page.locator(f"#station-{LONG_ID}")).to_contain_text(f"#{station}")
            await expect(stranger.page.locator("main")).to_contain_text("to start a charge")
            await stranger.looks_right()
    finally:
        await app.stop()


async def test_the_dashboards_pages_fit_a_phone_without_console_errors(net, tmp_path: Path, browser):
    """The CPO dashboard with what makes it wide: a failed settle and its long reason, a rejected session,
    a settlement, a held session with its signed record and both decisions (the journey shows it with
    sessions in flight)."""
    driver = Account.create().address
    store = Store(tmp_path / "core.sqlite")
    store.add_station(1, LONG_ID, 2)
    store.set_connector_status(LONG_ID, 1, "Faulted", "GroundFailure")

    def record(seq: int, state: State, **fields) -> SessionRecord:
        tariff = Tariff(35 * TOKEN // 100, TOKEN // 2)
        return SessionRecord(
            session_id=make_session_id(driver, 0, seq), station_id=1, charge_point_id=LONG_ID, connector=1,
            driver=driver, deposit=5 * TOKEN, tariff=tariff, state=state, requested_at=time.time(), **fields,
        )  # fmt: skip

    reason = "InvalidState (session 0x" + "ab" * 32 + " is CANCELLED on chain)"
    store.insert_session(record(1, State.FAILED, last_error=f"settle: {reason}"))
    store.enqueue(JobKind.SETTLE, make_session_id(driver, 0, 1), SettleArgs(meter_stop=1500))
    store.update_job(store.jobs("pending")[0].id, status="failed", last_error=reason)
    store.insert_session(record(2, State.REJECTED, reject_reason=int(CancelReason.STATION_OFFLINE)))
    store.insert_session(record(3, State.SETTLED, cost=566_150_000_000_000_000, finished_at=time.time()))
    why = "End record refused: MeterSignatureInvalid (signed by a key the registry does not hold for this station)"
    store.insert_session(record(4, State.HELD, meter_start=1000, meter_last=1200, last_error=why, started_at=1.0))
    store.save_meter_record(make_session_id(driver, 0, 4), "Transaction.End", "OCMF|" + '{"FV":"1.0"}' * 40)
    metered = dataclasses.replace(record(5, State.HELD, meter_start=0, last_error=why, started_at=1.0), station_id=2)
    store.insert_session(metered)  # at a station with a meter key: reject only
    service = SessionService(Settings(), store)
    service.meter_keys[1] = b""  # plain: session 4 can be settled at its last trusted reading
    source = ServiceDashboardSource(service, net.w3, net.deployment, net.operator.address)
    password = "the dashboard password"
    app = create_dashboard_app(source, DashboardSettings(port=0, password=hash_password(password)))
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    operator = await watched_page(browser)
    page = operator.page
    try:
        async with screenshots_on_failure("dashboard-pages", [page]):
            await page.goto(server.url + "/")
            await operator.looks_right()
            await page.get_by_label("Dashboard password").fill("not it")
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.locator(".error")).to_have_text("wrong password")
            await operator.looks_right()
            await page.get_by_label("Dashboard password").fill(password)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.locator("#jobs")).to_contain_text("CANCELLED on chain")
            await expect(page.locator("#settled")).to_contain_text("0.5662")
            await expect(page.locator("#held")).to_contain_text("MeterSignatureInvalid")
            await page.locator("#held summary").click()  # the signed record, opened
            await operator.looks_right()
            await page.locator("#held").get_by_role("button", name="Settle at 1200 Wh").click()
            await expect(page.locator(".notice")).to_contain_text("settle queued at 1200 Wh")
            await operator.looks_right()
            await page.locator("#held").get_by_role("button", name="Reject and refund").click()
            await expect(page.locator(".notice")).to_have_text(
                f"{metered.session_id:#066x}: rejected, refund of the whole deposit queued"
            )
            await expect(page.locator("#held")).to_contain_text("none: every stop was trusted")
            await operator.looks_right()
    finally:
        await server.stop()
        store.close()


async def test_a_held_session_on_the_drivers_app_fits_a_phone_without_console_errors(clean_chain, tmp_path, browser):
    """Issue 19: the session page of a session the operator holds, with the Core Client's live data (its
    ``[live]`` app over a store where the session is HELD): held, why, when the deposit comes back; the
    History page says it is held too."""
    net = clean_chain
    station = net.add_station(LONG_ID, 2)
    config = wallet_config(net, tmp_path / "home")
    wallet = funded_wallet(net, config.home, 10 * TOKEN)
    session_id = wallet.open_session(station, 1, 5 * TOKEN)
    operator_start(net, session_id, meter_start=1000)
    why = BEYOND_THE_CONNECTOR
    async with held_session_live(tmp_path / "core.sqlite", (station, LONG_ID), session_id, wallet.address) as live_url:
        app = HttpServer(create_app(config, live_url=live_url), "127.0.0.1", 0)
        await app.start()
        driver = await watched_page(browser)
        page = driver.page
        try:
            async with screenshots_on_failure("held-page", [page]):
                await page.goto(f"{app.url}/sessions/{session_id:#066x}")
                await page.locator("#unlock").get_by_label("Password").fill(PASSWORD)
                await page.locator("#unlock").get_by_role("button", name="Unlock").click()
                await expect(page.locator("#held")).to_contain_text(f"until the operator decides: {why}")
                await expect(page.locator("#held")).to_contain_text("the deposit comes back at the latest from")
                await expect(page.locator("#held-badge")).to_have_text("held")
                await expect(page.locator("#stop")).to_have_count(0)
                await driver.looks_right()
                await page.goto(f"{app.url}/history")  # held there too, with why
                await expect(page.locator("#held-1")).to_contain_text(f"until the operator decides: {why}")
                await driver.looks_right()
        finally:
            await app.stop()
