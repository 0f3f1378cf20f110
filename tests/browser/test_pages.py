"""Every page of the driver's app in each of its states, on a 390 px phone: nothing wider than the
screen, no console error (the favicon included). The journey (test_journey.py) checks the same on the
pages it passes, with the Core Client's live data and the CPO dashboard; here the app runs on the chain
alone and the operator's side is driven with its transactions, to reach every state quickly."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import expect

from ev_network.session_ids import parse_session_id
from ev_network.web.server import HttpServer
from tools.harness.browser import screenshots_on_failure, watched_page
from tools.harness.wallet import PASSWORD, operator_settle, operator_start, wallet_config
from wallet.web import create_app

LONG_ID = "CP-PAGES-BERLIN-0001"  # a long charge point id (OCPP allows 20 characters here)


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
                create = page.locator("#create")
                await create.get_by_label("New password").fill(PASSWORD)
                await create.get_by_label("Repeat it").fill(PASSWORD)
                await create.get_by_role("button", name="Create account").click()
                await expect(page.locator(".notice")).to_contain_text("created and unlocked")
                await driver.looks_right()
                await page.get_by_role("button", name="Lock").click()
            await expect(page.locator("#unlock select")).to_be_visible()
            await driver.looks_right()
            await page.locator("#unlock").get_by_label("Password").fill("not the password")
            await page.locator("#unlock").get_by_role("button", name="Unlock").click()
            await expect(page.locator(".error")).to_contain_text("wrong password")
            await driver.looks_right()
            await page.locator("#unlock").get_by_label("Password").fill(PASSWORD)
            await page.locator("#unlock").get_by_role("button", name="Unlock").click()
            await page.locator("#topup").get_by_role("button", name="Top up").click()
            await expect(page.locator(".notice")).to_contain_text("topped up")
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
