"""The driver's app and other sites, in a real browser: a link from another site's page (a top-level
navigation) arrives signed in, and a form of another site posting to the app is refused without
signing the driver out. The other site is the same machine under another name (``localhost`` against
the app's ``127.0.0.1``: two sites to the browser)."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from ev_network.web.server import HttpServer
from tools.harness.browser import create_account, screenshots_on_failure, watched_page
from tools.harness.wallet import PASSWORD, wallet_config
from wallet.web import create_app


def other_site(wallet_url: str) -> Starlette:
    """A page of another site that links to the wallet and posts a form to it (lock, with a guessed token)."""
    page = f"""<!doctype html><title>elsewhere</title><link rel="icon" href="data:,">
<a id="link" href="{wallet_url}/history">your charging history</a>
<form id="form" method="post" action="{wallet_url}/lock"><input type="hidden" name="csrf" value="guess">
<button type="submit">win a prize</button></form>"""
    return Starlette(routes=[Route("/", lambda request: HTMLResponse(page))])


async def test_a_link_from_another_site_arrives_signed_in_and_its_form_is_refused(net, tmp_path: Path, browser):
    wallet = HttpServer(create_app(wallet_config(net, tmp_path / "home")), "127.0.0.1", 0)
    await wallet.start()
    elsewhere = HttpServer(other_site(wallet.url), "127.0.0.1", 0)
    await elsewhere.start()
    driver = await watched_page(browser)
    page = driver.page
    try:
        async with screenshots_on_failure("cross-site", [page]):
            await page.goto(wallet.url + "/")
            await create_account(driver, PASSWORD)
            await expect(page.locator("#balance")).to_be_visible()

            other = f"http://localhost:{elsewhere.address[1]}/"
            await page.goto(other)
            await page.locator("#link").click()
            await expect(page.locator("h1")).to_have_text("History")  # signed in, not the unlock form
            await driver.looks_right()

            await page.goto(other)
            async with page.expect_response(lambda r: r.request.method == "POST") as posted:
                await page.get_by_role("button", name="win a prize").click()
            assert (await posted.value).status == 403
            await expect(page.locator(".error")).to_contain_text("sent from another site")
            await driver.looks_right()
            await page.get_by_role("link", name="Open the app").click()
            await expect(page.locator("#balance")).to_be_visible()  # still signed in: nothing was locked
    finally:
        await elsewhere.stop()
        await wallet.stop()
