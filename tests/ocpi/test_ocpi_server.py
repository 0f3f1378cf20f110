"""Our eMSP endpoints over real HTTP (uvicorn), called the way a CSMS calls them: authentication and
the 401 envelope, versions and details, the receivers (Locations, Tariffs, Sessions, CDRs,
CommandResults) handing validated objects to the inbox, our Tokens (pagination, real-time
authorization), and every refusal with the status code 2.2.1 names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from core_client.ocpi.inbox import IssuedToken, Refusal
from core_client.ocpi.models import Token
from core_client.ocpi.models.enums import CommandResultType, CommandType, ModuleID, Status
from core_client.ocpi.registration import Registration
from tools.harness.ocpi import objects
from tools.harness.ocpi.our_emsp import TOKEN_B, Emsp, emsp_server, registration

LOC = "2.2.1/locations/NL/TNM/LOC1"


@pytest.fixture
async def emsp(tmp_path: Path) -> AsyncIterator[Emsp]:
    async with emsp_server(tmp_path) as server:
        yield server


# ------------------------------------------------------------------------------ authentication, versions


async def test_wrong_or_missing_token_gets_401_with_the_envelope(emsp: Emsp) -> None:
    for token in ("not-our-token", None):
        answer = await emsp.call("GET", "versions", token=token, headers={"X-Request-ID": "req-1"})
        assert answer.http == 401 and answer.status_code == 2000 and "timestamp" in answer.body
        assert answer.headers["X-Request-ID"] == "req-1" and answer.headers["X-Correlation-ID"]
    assert (await emsp.call("PUT", LOC, objects.location(), token="nope")).http == 401
    assert emsp.inbox.locations == [] and emsp.mirror.all(ModuleID.LOCATIONS) == []


async def test_versions_and_details_list_our_modules_at_our_public_url(emsp: Emsp) -> None:
    versions = await emsp.call("GET", "versions", headers={"X-Correlation-ID": "corr-9"})
    assert versions.http == 200 and versions.status_code == 1000
    assert versions.data == [{"version": "2.2.1", "url": f"{emsp.url}/2.2.1"}]
    assert versions.headers["X-Correlation-ID"] == "corr-9"
    assert not any(h.lower().startswith("ocpi-") for h in versions.headers)  # configuration module: not routed
    details = await emsp.call("GET", versions.data[0]["url"])
    assert details.data["version"] == "2.2.1"
    assert {(e["identifier"], e["role"], e["url"]) for e in details.data["endpoints"]} == {
        ("credentials", "SENDER", f"{emsp.url}/2.2.1/credentials"),
        ("locations", "RECEIVER", f"{emsp.url}/2.2.1/locations"),
        ("tariffs", "RECEIVER", f"{emsp.url}/2.2.1/tariffs"),
        ("sessions", "RECEIVER", f"{emsp.url}/2.2.1/sessions"),
        ("cdrs", "RECEIVER", f"{emsp.url}/2.2.1/cdrs"),
        ("commands", "SENDER", f"{emsp.url}/2.2.1/commands"),
        ("tokens", "SENDER", f"{emsp.url}/2.2.1/tokens/"),
    }


async def test_unencoded_token_of_older_peers_is_accepted(emsp: Emsp) -> None:
    assert (await emsp.call("GET", "versions", encode=False)).status_code == 1000


async def test_unknown_path_and_method_get_the_envelope(emsp: Emsp) -> None:
    missing = await emsp.call("GET", "2.2.1/nothing-here")
    assert missing.http == 404 and missing.status_code == 2000
    wrong = await emsp.call("DELETE", LOC)
    assert wrong.http == 405 and wrong.status_code == 2000


# ------------------------------------------------------------------------------ locations


async def test_location_put_patch_get_and_evse_status_to_the_inbox(emsp: Emsp) -> None:
    created = await emsp.call(
        "PUT", LOC, objects.location(), headers={"OCPI-from-country-code": "NL", "OCPI-from-party-id": "TNM"}
    )
    assert (created.http, created.status_code) == (201, 1000) and "data" not in created.body
    assert created.headers["OCPI-from-country-code"] == "DE" and created.headers["OCPI-from-party-id"] == "EVN"
    assert created.headers["OCPI-to-country-code"] == "NL" and created.headers["OCPI-to-party-id"] == "TNM"
    assert [(p.key(), loc, evse, s) for p, loc, evse, s in emsp.inbox.statuses] == [
        (("NL", "TNM"), "LOC1", "E1", Status.AVAILABLE)
    ]
    replaced = await emsp.call("PUT", LOC, objects.location())
    assert (replaced.http, replaced.status_code) == (200, 1000)
    assert len(emsp.inbox.statuses) == 1  # unchanged status: nothing new

    patch = {"status": "CHARGING", "last_updated": "2026-12-06T10:05:00Z"}
    assert (await emsp.call("PATCH", f"{LOC}/E1", patch)).status_code == 1000
    assert emsp.inbox.statuses[-1][2:] == ("E1", Status.CHARGING)
    location = (await emsp.call("GET", LOC)).data
    assert location["evses"][0]["status"] == "CHARGING"
    assert location["evses"][0]["last_updated"] == location["last_updated"] == "2026-12-06T10:05:00Z"
    assert (await emsp.call("GET", f"{LOC}/e1/1")).data["standard"] == "IEC_62196_T2"  # ids: case-insensitive
    renamed = await emsp.call("PATCH", LOC, {"name": "Gent Noord", "last_updated": "2026-12-06T10:06:00Z"})
    assert (renamed.http, renamed.status_code) == (200, 1000)
    location = (await emsp.call("GET", LOC)).data
    assert location["name"] == "Gent Noord" and location["evses"][0]["status"] == "CHARGING"


async def test_evse_and_connector_put_update_their_parents(emsp: Emsp) -> None:
    await emsp.call("PUT", LOC, objects.location())
    new_evse = objects.evse("E2", status="OUTOFORDER") | {"last_updated": "2026-12-06T11:00:00Z"}
    assert (await emsp.call("PUT", f"{LOC}/E2", new_evse)).status_code == 1000
    assert emsp.inbox.statuses[-1][2:] == ("E2", Status.OUTOFORDER)
    connector = objects.connector("2", ["T9"]) | {"last_updated": "2026-12-06T12:00:00Z"}
    assert (await emsp.call("PUT", f"{LOC}/E2/2", connector)).status_code == 1000
    location = (await emsp.call("GET", LOC)).data
    assert [e["uid"] for e in location["evses"]] == ["E1", "E2"]
    assert [c["id"] for c in location["evses"][1]["connectors"]] == ["1", "2"]
    assert location["evses"][1]["last_updated"] == location["last_updated"] == "2026-12-06T12:00:00Z"
    assert emsp.inbox.locations[-1].evse("E2").connector("2").tariff_ids == ["T9"]


@pytest.mark.parametrize(
    "method, path, body, http, status, words",
    [
        ("PATCH", f"{LOC}/E1", {"status": "CHARGING"}, 200, 2001, "last_updated"),
        (
            "PATCH",
            "2.2.1/locations/NL/TNM/NOPE/E1",
            {"status": "CHARGING", "last_updated": objects.T0},
            404,
            2003,
            "NOPE",
        ),
        ("PATCH", f"{LOC}/E9", {"status": "CHARGING", "last_updated": objects.T0}, 404, 2001, "E9"),
        ("PATCH", f"{LOC}/E1", {"status": "BROKEN", "last_updated": objects.T0}, 200, 2001, "status"),
        ("PATCH", f"{LOC}/E1", {"uid": "E7", "last_updated": objects.T0}, 200, 2001, "uid"),
        ("PUT", "2.2.1/locations/NL/TNM/OTHER", objects.location(), 200, 2001, "id 'LOC1' differs"),
        ("PUT", "2.2.1/locations/NL/XYZ/LOC1", objects.location(), 404, 2001, "party NL/XYZ"),
        ("PUT", LOC, {k: v for k, v in objects.location().items() if k != "coordinates"}, 200, 2001, "coordinates"),
        ("PUT", LOC, None, 200, 2001, "Location object is required"),
        ("GET", "2.2.1/locations/NL/TNM/NOPE", None, 404, 2003, "NOPE"),
    ],
)
async def test_location_refusals(emsp: Emsp, method, path, body, http, status, words) -> None:
    await emsp.call("PUT", LOC, objects.location())
    before = list(emsp.inbox.statuses), (await emsp.call("GET", LOC)).data
    answer = await emsp.call(method, path, body)
    assert (answer.http, answer.status_code) == (http, status), answer.body
    assert words in answer.body["status_message"]
    assert (list(emsp.inbox.statuses), (await emsp.call("GET", LOC)).data) == before  # nothing changed


async def test_invalid_json_is_400_and_never_a_traceback(emsp: Emsp) -> None:
    answer = await emsp.call("PUT", LOC, raw=b'{"id": "LOC1",')
    assert answer.http == 400 and answer.status_code == 2000 and "not valid JSON" in answer.body["status_message"]


# ------------------------------------------------------------------------------ tariffs, sessions


async def test_tariff_put_get_delete(emsp: Emsp) -> None:
    path = "2.2.1/tariffs/NL/TNM/T1"
    assert (await emsp.call("PUT", path, objects.tariff("T1"))).http == 201
    assert emsp.inbox.tariffs[-1].elements[0].price_components[0].price == objects.price("ENERGY", "0.25")["price"]
    assert (await emsp.call("GET", path)).data["id"] == "T1"
    assert (await emsp.call("PUT", path, objects.tariff("T2"))).status_code == 2001  # id differs from the URL
    assert (await emsp.call("DELETE", path)).status_code == 1000
    assert [(p.key(), t) for p, t in emsp.inbox.deleted_tariffs] == [(("NL", "TNM"), "T1")]
    assert (await emsp.call("GET", path)).http == 404
    assert (await emsp.call("DELETE", path)).http == 404


async def test_session_put_then_patches_add_charging_periods(emsp: Emsp) -> None:
    path = "2.2.1/sessions/NL/TNM/S1"
    assert (await emsp.call("PUT", path, objects.session(status="PENDING"))).http == 201
    period = {"start_date_time": objects.T0, "dimensions": [{"type": "ENERGY", "volume": 1.5}]}
    for kwh in (1.5, 3.0):
        patch = {"kwh": kwh, "status": "ACTIVE", "charging_periods": [period], "last_updated": "2026-12-06T10:10:00Z"}
        assert (await emsp.call("PATCH", path, patch)).status_code == 1000
    session = emsp.inbox.sessions[-1]
    assert str(session.kwh) == "3.0" and session.status.value == "ACTIVE" and len(session.charging_periods) == 2
    assert (await emsp.call("PATCH", path, {"kwh": 4, "last_updated": objects.T0})).status_code == 1000
    assert len(emsp.inbox.sessions[-1].charging_periods) == 2  # no charging_periods in a PATCH: kept
    assert (await emsp.call("PUT", path, objects.session())).status_code == 1000
    assert emsp.inbox.sessions[-1].charging_periods is None  # a PUT replaces them
    unknown = await emsp.call("PATCH", "2.2.1/sessions/NL/TNM/S9", {"kwh": 1, "last_updated": objects.T0})
    assert (unknown.http, unknown.status_code) == (404, 2001)


# ------------------------------------------------------------------------------ CDRs


async def test_cdr_post_gives_its_location_and_a_duplicate_is_refused(emsp: Emsp) -> None:
    answer = await emsp.call("POST", "2.2.1/cdrs", objects.cdr("C1"))
    assert (answer.http, answer.status_code) == (201, 1000)
    where = answer.headers["Location"]
    assert where == f"{emsp.url}/2.2.1/cdrs/NL/TNM/C1"
    assert (await emsp.call("GET", where)).data["total_energy"] == 12.5
    again = await emsp.call("POST", "2.2.1/cdrs", objects.cdr("C1"))
    assert (again.http, again.status_code) == (200, 2000) and "received before" in again.body["status_message"]
    assert [c.id for c in emsp.inbox.cdrs] == ["C1"]


async def test_cdr_refused_by_the_inbox_leaves_nothing_and_can_come_again(emsp: Emsp) -> None:
    async def refuse(cdr) -> None:
        raise Refusal("no such session", 2001)

    taken = emsp.inbox.on_cdr
    emsp.inbox.on_cdr = refuse  # type: ignore[method-assign]
    answer = await emsp.call("POST", "2.2.1/cdrs", objects.cdr("C2"))
    assert (answer.http, answer.status_code, answer.body["status_message"]) == (200, 2001, "no such session")
    assert (await emsp.call("GET", "2.2.1/cdrs/NL/TNM/C2")).http == 404
    emsp.inbox.on_cdr = taken  # type: ignore[method-assign]
    assert (await emsp.call("POST", "2.2.1/cdrs", objects.cdr("C2"))).http == 201


async def test_inbox_failure_is_3000_without_details(emsp: Emsp) -> None:
    async def broken(cdr) -> None:
        raise KeyError("secret internals")

    emsp.inbox.on_cdr = broken  # type: ignore[method-assign]
    answer = await emsp.call("POST", "2.2.1/cdrs", objects.cdr("C3"))
    assert (answer.http, answer.status_code, answer.body["status_message"]) == (500, 3000, "internal error")
    assert "secret" not in str(answer.body)


async def test_cdr_of_another_party_or_malformed_is_refused(emsp: Emsp) -> None:
    foreign = objects.cdr("C4") | {"party_id": "XYZ"}
    assert (await emsp.call("POST", "2.2.1/cdrs", foreign)).status_code == 2001
    bad = objects.cdr("C5") | {"end_date_time": "2026-12-06T11:00:00+01:00"}
    answer = await emsp.call("POST", "2.2.1/cdrs", bad)
    assert answer.status_code == 2001 and "end_date_time" in answer.body["status_message"]
    assert emsp.inbox.cdrs == []


# ------------------------------------------------------------------------------ commands


async def test_command_result_reaches_the_inbox(emsp: Emsp) -> None:
    answer = await emsp.call("POST", "2.2.1/commands/START_SESSION/abc-1", {"result": "ACCEPTED"})
    assert answer.status_code == 1000
    assert [(c, u, r.result) for c, u, r in emsp.inbox.results] == [
        (CommandType.START_SESSION, "abc-1", CommandResultType.ACCEPTED)
    ]
    assert (await emsp.call("POST", "2.2.1/commands/START_SESSION/abc-2", {"result": "MAYBE"})).status_code == 2001
    assert (await emsp.call("POST", "2.2.1/commands/DANCE/abc-3", {"result": "ACCEPTED"})).http == 404


# ------------------------------------------------------------------------------ tokens


def issued(uid: str, minute: int, live: bool = True) -> IssuedToken:
    raw = objects.token(uid) | {"last_updated": f"2026-12-06T10:{minute:02d}:00Z"}
    return IssuedToken(Token.model_validate(raw), "LOC1", "E1", live)


async def test_tokens_are_paginated_with_link_and_counts(emsp: Emsp) -> None:
    for n in range(5):
        emsp.inbox.issue(issued(f"TOK{n}", n))
    first = await emsp.call("GET", "2.2.1/tokens?limit=2")
    assert [t["uid"] for t in first.data] == ["TOK0", "TOK1"]
    assert first.headers["X-Total-Count"] == "5" and first.headers["X-Limit"] == "2"
    assert first.headers["Link"] == f'<{emsp.url}/2.2.1/tokens?offset=2&limit=2>; rel="next"'
    seen, link = [t["uid"] for t in first.data], first.headers["Link"]
    while link:
        page = await emsp.call("GET", link[1 : link.index(">")])
        seen += [t["uid"] for t in page.data]
        link = page.headers.get("Link")
    assert seen == [f"TOK{n}" for n in range(5)]
    since = await emsp.call("GET", "2.2.1/tokens?date_from=2026-12-06T10:03:00Z")
    assert [t["uid"] for t in since.data] == ["TOK3", "TOK4"] and since.headers["X-Total-Count"] == "2"
    assert (await emsp.call("GET", "2.2.1/tokens?offset=minus-one")).status_code == 2001


async def test_real_time_authorization(emsp: Emsp) -> None:
    emsp.inbox.issue(issued("LIVE", 1))
    emsp.inbox.issue(issued("DONE", 2, live=False))
    here = {"location_id": "LOC1", "evse_uids": ["E1", "E2"]}

    async def authorize(uid: str, body: object, type_: str = "APP_USER"):
        return await emsp.call("POST", f"2.2.1/tokens/{uid}/authorize?type={type_}", body)

    allowed = await authorize("live", here)
    assert allowed.data["allowed"] == "ALLOWED" and allowed.data["location"] == {
        "location_id": "LOC1",
        "evse_uids": ["E1"],
    }
    assert allowed.data["token"]["uid"] == "LIVE"
    assert (await authorize("LIVE", {"location_id": "LOC2"})).data["allowed"] == "NOT_ALLOWED"
    assert (await authorize("LIVE", {"location_id": "LOC1", "evse_uids": ["E2"]})).data["allowed"] == "NOT_ALLOWED"
    assert (await authorize("DONE", here)).data["allowed"] == "EXPIRED"
    no_location = await authorize("LIVE", None)
    assert (no_location.http, no_location.status_code) == (200, 2002)
    for unknown in (await authorize("NOBODY", here), await authorize("LIVE", here, "RFID")):
        assert (unknown.http, unknown.status_code) == (404, 2004) and "data" not in unknown.body
    default_type = await emsp.call("POST", "2.2.1/tokens/LIVE/authorize", here)  # no type: RFID (the text's default)
    assert default_type.status_code == 2004


async def test_slashes_as_peers_join_them(emsp: Emsp) -> None:
    emsp.inbox.issue(issued("LIVE", 1))
    details = (await emsp.call("GET", "2.2.1")).data
    tokens_url = next(e["url"] for e in details["endpoints"] if e["identifier"] == "tokens")
    literal = await emsp.call("POST", f"{tokens_url}LIVE/authorize?type=APP_USER", {"location_id": "LOC1"})
    assert literal.data["allowed"] == "ALLOWED"  # {tokens_endpoint_url}{token_uid}/authorize, as 2.2.1 writes it
    answer = await emsp.call("POST", "2.2.1/tokens//LIVE/authorize/?type=APP_USER", {"location_id": "LOC1"})
    assert answer.data["allowed"] == "ALLOWED"
    assert (await emsp.call("GET", "2.2.1/tokens/")).status_code == 1000


# ------------------------------------------------------------------------------ credentials


async def test_credentials_get_post_and_delete_by_the_csms(emsp: Emsp) -> None:
    ours = await emsp.call("GET", "2.2.1/credentials")
    assert ours.data["token"] == TOKEN_B and ours.data["url"] == f"{emsp.url}/versions"
    assert ours.data["roles"] == [
        {"role": "EMSP", "business_details": {"name": "EV Network"}, "party_id": "EVN", "country_code": "DE"}
    ]
    again = await emsp.call("POST", "2.2.1/credentials", ours.data)
    assert (again.http, again.status_code) == (405, 2000)
    assert (await emsp.call("DELETE", "2.2.1/credentials")).status_code == 1000
    registration = emsp.store.load()
    assert registration is not None and not registration.registered and "unregistered us" in registration.ended
    assert (await emsp.call("GET", "versions")).http == 401  # token B is void
    assert oct((emsp.store.path.stat().st_mode) & 0o777) == "0o600"
    assert TOKEN_B not in repr(registration)


async def test_pushes_during_the_handshake_are_taken(tmp_path: Path) -> None:
    """The CSMS may push before its answer to our POST reaches us: its roles are not known yet."""
    async with emsp_server(tmp_path, registered=False) as server:
        server.store.save(Registration(versions_url="http://127.0.0.1:1/v", token_b=SecretStr(TOKEN_B)))
        assert (await server.call("PUT", LOC, objects.location())).http == 201
        server.store.save(registration())  # the handshake done: only the CSMS's own party from now on
        assert (await server.call("PUT", "2.2.1/locations/NL/XYZ/LOC1", objects.location())).http == 404
