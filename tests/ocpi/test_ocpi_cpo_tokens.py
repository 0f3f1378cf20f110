"""Our Tokens module as the CPO (issue 20 part 3), judged by the stand-in eMSP (tests/interop/ocpi_emsp.js,
written from the 2.2.1 text, shares no code with ours): we pull its Token list page by page (offset/limit,
Link; later pulls only what changed, date_from), it pushes Tokens to our RECEIVER (PUT, PATCH; GET reads
them back), and what we hold is in the Core Client's database, on SQLite and on PostgreSQL. Bad pushes are
refused with the 2.2.1 status codes."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from core_client.ocpi.cpo.token_pull import TokenPull
from core_client.ocpi.cpo.token_store import TokenStore
from core_client.ocpi.models.enums import TokenType, WhitelistType
from core_client.storage.store import Store
from tools.harness.ocpi.our_cpo import our_cpo
from tools.harness.ocpi.peers import emsp_platform

NEW = {"uid": "04C0FFEE01", "type": "RFID", "contract_id": "NL-EMS-C1", "issuer": "EMS", "valid": True}


async def test_tokens_pulled_page_by_page_then_since_the_last_pull_and_pushed_into_our_database(
    tmp_path: Path, db_location: str | Path
):
    store = Store(db_location)
    tokens = TokenStore(store.db)
    async with our_cpo(tmp_path, tokens=tokens) as cpo, emsp_platform(tmp_path, "--max-limit", "4") as emsp:
        token_a = cpo.peers.issue("ems")
        assert (await emsp.control("register", {"versions_url": cpo.versions_url, "token_a": token_a}))["ok"]
        [peer] = cpo.peers.all()
        pull = TokenPull(cpo.settings, cpo.peers, tokens, store)

        assert await pull.pull(peer) == 6  # the eMSP's whole list, in two pages of at most 4
        gets = [e for e in await emsp.control("log") if e["method"] == "GET" and "/tokens" in e["url"]]
        assert [parse_qs(urlsplit(e["url"]).query).get("offset") for e in gets] == [None, ["4"]]
        held = tokens.get("NL", "EMS", "04a1b2c3d5", TokenType.RFID)  # CiStrings: any case
        assert held is not None and held.whitelist is WhitelistType.ALWAYS and tokens.count("ems") == 6

        await emsp.control("token", {**NEW, "whitelist": "NEVER", "push": False})  # changed, not pushed
        seen = len(await emsp.control("log"))
        assert await pull.pull(peer) == 1  # only what changed since the first pull began
        [again] = [e for e in await emsp.control(f"log?since={seen}") if e["method"] == "GET"]
        assert "date_from" in parse_qs(urlsplit(again["url"]).query)
        assert tokens.get("NL", "EMS", NEW["uid"], TokenType.RFID).whitelist is WhitelistType.NEVER

        pushed = await emsp.control("token", {**NEW, "uid": "04C0FFEE02", "whitelist": "ALWAYS"})
        assert (pushed["pushed"], pushed["http"]) == (True, 201)
        assert tokens.get("NL", "EMS", "04C0FFEE02", TokenType.RFID).valid is True
        patched = await emsp.control("token-patch", {"uid": "04C0FFEE02", "valid": False})
        assert (patched["pushed"], patched["http"]) == (True, 200)
        assert tokens.get("NL", "EMS", "04C0FFEE02", TokenType.RFID).valid is False
        read = await emsp.control("token-get", {"uid": "04C0FFEE02"})
        assert (read["status_code"], read["data"]["valid"], read["data"]["whitelist"]) == (1000, False, "ALWAYS")
        unknown = await emsp.control("token-get", {"uid": "NOPE"})
        assert (unknown["http"], unknown["status_code"]) == (404, 2004)
        assert [v for v in await emsp.violations() if not v["violation"].startswith("refused")] == []

        async def call(method: str, path: str, body: object = None, token: str | None = None) -> tuple[int, int]:
            secret = token or peer_token(cpo)
            headers = {"Authorization": "Token " + base64.b64encode(secret.encode()).decode()}
            url = f"{cpo.settings.url('2.2.1', 'tokens')}/{path}"
            async with emsp.http.request(method, url, json=body, headers=headers) as response:
                return response.status, (await response.json())["status_code"]

        valid = {
            **NEW,
            "country_code": "NL",
            "party_id": "EMS",
            "whitelist": "ALWAYS",
            "last_updated": "2026-12-06T12:00:00Z",
        }
        assert await call("PUT", "NL/EMS/04C0FFEE09", valid) == (200, 2001)  # uid is not the URL's
        assert await call("PUT", "NL/EMS/04C0FFEE01?type=APP_USER", valid) == (200, 2001)  # nor the type
        assert await call("PUT", "DE/XYZ/04C0FFEE01", valid) == (404, 2001)  # not a party of this eMSP
        assert await call("PUT", "NL/EMS/04C0FFEE01?type=CARD", valid) == (200, 2001)  # no such TokenType
        assert await call("PATCH", "NL/EMS/04C0FFEE02", {"valid": True}) == (200, 2001)  # no last_updated
        assert await call("PATCH", "NL/EMS/UNKNOWN1", {"valid": True, "last_updated": "2026-12-06T12:00:00Z"}) == (
            404,
            2004,
        )
        assert await call("PUT", "NL/EMS/04C0FFEE01", {"uid": "04C0FFEE01"}) == (200, 2001)  # not a whole Token
        assert await call("GET", "NL/EMS/04C0FFEE01", token="not-ours") == (401, 2000)
        assert tokens.get("NL", "EMS", "04C0FFEE02", TokenType.RFID).valid is False  # nothing changed by them
    store.close()


def peer_token(cpo) -> str:
    [peer] = cpo.peers.all()
    return peer.token_c.get_secret_value()
