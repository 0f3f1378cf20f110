"""A driver's whole journey in a real browser (phone-sized), on the real Core Client, Anvil and a
simulated charge point: create and unlock an account, top up, pick a station, start, watch energy and
cost rise, stop, see the invoice, download the PDF. Someone else's session is refused; the CPO's
dashboard shows the session in flight and its settlement, and refuses a wrong password. Every page on
the way fits the phone and logs no console error."""

from __future__ import annotations

import asyncio
import io
import re
from decimal import Decimal
from pathlib import Path

from eth_account import Account
from playwright.async_api import expect
from pypdf import PdfReader

from ev_network.contracts import SessionState
from ev_network.session_ids import hex_session_id, label_of_driver, parse_session_id, session_label
from ev_network.units import money
from tools.harness.browser import (
    DASHBOARD_PASSWORD,
    create_account,
    screenshots_on_failure,
    snap,
    unlock,
    watched_page,
    web_stack,
)
from tools.harness.core import open_session, wait_chain
from tools.harness.wallet import PASSWORD, give_gas, settled_event

TOKEN = 10**18


def figure(text: str) -> Decimal:
    return Decimal(text.strip().split()[0])


async def test_driver_journey_and_dashboard(clean_chain, tmp_path: Path, keyfile: Path, browser):
    net = clean_chain
    async with web_stack(net, tmp_path, keyfile) as stack:
        driver, operator = await watched_page(browser, accept_downloads=True), await watched_page(browser)
        page, cpo = driver.page, operator.page
        async with screenshots_on_failure("journey", [page, cpo]):
            # create the account (unlocked at once) and top up on the dev chain
            await page.goto(stack.wallet_url + "/")
            await driver.looks_right()
            await create_account(driver, PASSWORD)  # looks right: the notice names the keystore's folder in full
            address = (await page.locator("#address").inner_text()).strip()
            await page.locator("#topup").get_by_role("button", name="Top up").click()
            await expect(page.locator(".notice")).to_contain_text("topped up 50.00")
            await expect(page.locator("#balance")).to_contain_text("50.00")

            # lock, then a wrong password is refused and the right one unlocks
            await page.get_by_role("button", name="Lock").click()
            await unlock(driver, PASSWORD)
            await expect(page.locator("#balance")).to_contain_text("50.00")

            # pick the station (live availability from the Core Client), quote, start with a deposit
            await page.get_by_role("link", name="Stations").click()
            card = page.locator(f"#station-{stack.cp}")
            await expect(card).to_contain_text("1: Available")
            await page.get_by_label("Energy (kWh)").fill("20")
            await page.get_by_role("button", name="Quote").click()
            await expect(page.locator("#quote-total")).to_have_text(re.compile(r"7\.50"))  # 0.50 + 20 x 0.35
            await driver.looks_right()
            await snap(page, "wallet-stations")
            await card.get_by_label("Deposit").fill("10")
            await card.get_by_role("button", name="Start charging").click()
            await expect(page).to_have_url(re.compile(r"/sessions/0x[0-9a-f]{64}$"))
            session_id = parse_session_id(page.url.rsplit("/", 1)[1])

            # live: energy and cost rise without a reload
            await expect(page.locator("#phase")).to_have_text("charging", timeout=20_000)
            await expect(page.locator("#energy")).not_to_have_text("0.000", timeout=10_000)
            first = figure(await page.locator("#cost").inner_text())
            await expect(page.locator("#cost")).not_to_have_text(str(first), timeout=10_000)
            assert figure(await page.locator("#cost").inner_text()) > first > 0
            assert figure(await page.locator("#deposit-left").inner_text()) < 10
            await expect(page.locator("#station-name")).to_have_text(stack.cp)
            await driver.looks_right()
            await snap(page, "wallet-live")

            # the CPO: a wrong password is refused; then the session in flight
            await cpo.goto(stack.dashboard_url + "/")
            await operator.looks_right()
            await cpo.get_by_label("Dashboard password").fill("guess")
            async with cpo.expect_response(lambda r: r.request.method == "POST") as login:
                await cpo.get_by_role("button", name="Sign in").click()
            assert (await login.value).status == 401
            await expect(cpo.locator(".error")).to_have_text("wrong password")
            await operator.looks_right()
            await cpo.get_by_label("Dashboard password").fill(DASHBOARD_PASSWORD)
            await cpo.get_by_role("button", name="Sign in").click()
            tag = f"Session {label_of_driver(session_id)}"  # as the driver's page names it, with the driver
            await expect(page.locator("main")).to_contain_text(f"Session {session_label(session_id)}")
            await expect(cpo.locator("#sessions")).to_contain_text(tag)
            await expect(cpo.locator("#sessions")).to_contain_text("charging")
            await expect(cpo.locator("#stations")).to_contain_text("1: Charging")
            await operator.looks_right()

            # stop; the page follows the settlement and links the invoice
            await page.get_by_role("button", name="Stop charging").click()
            await expect(page.locator("#phase")).to_have_text("settled", timeout=30_000)
            settled = settled_event(net, session_id)
            await expect(page.locator("#cost")).to_have_text(money(settled["cost"], 18))
            await expect(page.locator("#cost")).to_have_attribute("title", figure_text(settled["cost"]))
            await expect(page.locator("main")).not_to_contain_text("stop requested")
            await driver.looks_right()
            await page.locator("#invoice-link").click()
            await expect(page.locator("#invoice-total")).to_have_text(f"{money(settled['cost'], 18)} EVE")
            await expect(page.locator("#invoice-total")).to_have_attribute(
                "title", f"{figure_text(settled['cost'])} EVE"
            )
            await driver.looks_right()
            await snap(page, "wallet-invoice")
            async with page.expect_download() as download_info:
                await page.locator("#pdf").click()
            pdf = Path(await (await download_info.value).path()).read_bytes()
            text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
            assert pdf.startswith(b"%PDF") and figure_text(settled["cost"]) in text and address[2:10] in text

            # the dashboard shows the settlement and today's revenue
            await expect(cpo.locator("#settled")).to_contain_text(tag, timeout=10_000)
            await expect(cpo.locator("#revenue")).to_contain_text(money(settled["cost"], 18))
            await operator.looks_right()
            await snap(cpo, "dashboard")

            # someone else's session: the wallet refuses its page, the Core Client its live data
            other = Account.create()
            give_gas(net, other.address)
            await asyncio.to_thread(net.fund, other)
            theirs = await open_session(net, other, stack.core.stations[stack.cp], 2, 5 * TOKEN)
            await wait_chain(net, theirs, SessionState.ACTIVE)
            await page.goto(f"{stack.wallet_url}/sessions/{hex_session_id(theirs)}")
            await expect(page.locator(".error")).to_contain_text("belongs to another driver")
            await driver.looks_right()  # the message names the session's full id
            await page.goto(f"{stack.wallet_url}/history")
            await expect(page.locator("main")).to_contain_text("settled")
            await driver.looks_right()


def figure_text(units: int) -> str:
    from wallet.units import format_amount

    return format_amount(units, 18)
