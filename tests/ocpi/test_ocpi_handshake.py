"""The credentials handshake as the eMSP against the independent CPO platform (tests/interop/ocpi_cpo.js):
register (versions -> 2.2.1 -> details -> POST with token A; the platform calls our endpoints with our
token B; we keep its token C), re-register (PUT), unregister (DELETE), and what goes wrong in one line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core_client.ocpi.credentials import Handshake
from core_client.ocpi.csms import Csms
from core_client.ocpi.errors import NotRegistered, OcpiError, OcpiRejected, OcpiUnauthorized
from core_client.ocpi.models import Location
from core_client.ocpi.models.enums import InterfaceRole, ModuleID, Status
from tools.harness.ocpi.our_emsp import Emsp, emsp_server
from tools.harness.ocpi.peers import TOKEN_A, Cpo, cpo_platform


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[Cpo]:
    async with cpo_platform(tmp_path, "--max-limit", "2") as platform:
        yield platform


@pytest.fixture
async def emsp(tmp_path: Path, cpo: Cpo) -> AsyncIterator[Emsp]:
    async with emsp_server(tmp_path, registered=False, versions_url=cpo.versions_url, token_a=TOKEN_A) as server:
        yield server


def handshake(emsp: Emsp) -> Handshake:
    return Handshake(emsp.settings, emsp.store)


async def test_register_update_unregister_with_an_independent_cpo(emsp: Emsp, cpo: Cpo) -> None:
    registration = await handshake(emsp).register()
    assert registration.registered and [p.key() for p in registration.cpo_parties()] == [("DE", "EVP")]
    token_b = registration.token_b.get_secret_value()
    state = await cpo.control("state")
    assert state["registration"]["token_b"] == token_b  # it called our versions with it during the POST
    assert state["registration"]["roles"][0]["role"] == "EMSP"
    assert registration.endpoint(ModuleID.COMMANDS, InterfaceRole.RECEIVER).startswith(cpo.base)

    # the platform pushes with token B: an EVSE status reaches our inbox
    await cpo.control("push", {})
    await cpo.control("status", {"location_id": "LOC-1", "evse_uid": "EVSE-2", "status": "CHARGING"})
    assert any(s[2:] == ("EVSE-2", Status.CHARGING) for s in emsp.inbox.statuses)
    assert isinstance(emsp.inbox.locations[0], Location)

    # locations, paginated (the platform returns at most 2 a page), with token C
    async with handshake(emsp).client() as client:
        pulled = await Csms(client, emsp.store, emsp.settings).locations()
    assert [loc.id for loc in pulled.objects] == ["LOC-1", "LOC-2", "LOC-3"] and pulled.problems == []
    log = await cpo.control("log")
    assert [e["url"] for e in log if e["direction"] == "in" and "/locations" in e["url"]] == [
        "/ocpi/2.2.1/locations",
        "/ocpi/2.2.1/locations?offset=2&limit=2",
    ]

    updated = await handshake(emsp).update()
    assert updated.token_b.get_secret_value() != token_b and updated.their_token() != registration.their_token()
    assert (await emsp.call("GET", "versions", token=token_b)).http == 401  # the old token B is void
    await cpo.control("status", {"location_id": "LOC-1", "evse_uid": "EVSE-2", "status": "AVAILABLE"})
    assert emsp.inbox.statuses[-1][2:] == ("EVSE-2", Status.AVAILABLE)  # pushed with the new token B

    assert "unregistered from" in await handshake(emsp).unregister()
    assert emsp.store.load() is None
    assert (await cpo.control("state"))["registration"] is None
    with pytest.raises(NotRegistered, match="core-client ocpi register"):
        await handshake(emsp).update()
    violations = await cpo.violations()
    assert violations == [], [v.get("violation") or v for v in violations]


async def test_register_twice_is_refused_in_one_line(emsp: Emsp) -> None:
    await handshake(emsp).register()
    with pytest.raises(OcpiError, match=r"already registered with .*core-client ocpi update"):
        await handshake(emsp).register()


async def test_wrong_token_a_leaves_nothing(tmp_path: Path, cpo: Cpo) -> None:
    async with emsp_server(tmp_path, registered=False, versions_url=cpo.versions_url, token_a="wrong") as emsp:
        with pytest.raises(OcpiUnauthorized, match="HTTP 401, our credentials token is not accepted"):
            await handshake(emsp).register()
        assert emsp.store.load() is None


async def test_our_endpoints_unreachable_during_the_post_is_3001_and_leaves_nothing(tmp_path: Path, cpo: Cpo) -> None:
    async with emsp_server(tmp_path, registered=False, versions_url=cpo.versions_url, token_a=TOKEN_A) as emsp:
        pass  # our server is gone: the platform cannot GET our versions during the POST
    with pytest.raises(OcpiRejected, match="status 3001") as refused:
        await handshake(emsp).register()
    assert refused.value.status_code == 3001
    assert emsp.store.load() is None
