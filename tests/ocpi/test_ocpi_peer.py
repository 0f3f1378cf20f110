"""The stand-in OCPI 2.2.1 CPO platform (tests/interop/ocpi_cpo.js, run by tools.harness.ocpi.peers) checked on
its own, with plain HTTP and a minimal eMSP (tools.harness.ocpi.plain_emsp, stdlib http.server): versions and the 401 envelope, the credentials handshake,
paginated GETs, a START_SESSION -> Session pushes -> STOP_SESSION -> signed CDR, refusals and the outage switch.
It keeps the peer the OCPI tests and the demo rely on working; the Core Client is not involved."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ev_network import ocmf
from tools.harness.ocpi.peers import TOKEN_A, Cpo, cpo_platform
from tools.harness.ocpi.plain_emsp import (
    EMSP_ROLE,
    TOKEN_B,
    UID,
    WAIT,
    Answer,
    Emsp,
    auth,
    call,
    emsp_server,
    register,
    start_session,
)


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[Cpo]:
    async with cpo_platform(tmp_path, "--max-limit", "2") as running:
        yield running


@pytest.fixture
def emsp() -> Iterator[Emsp]:
    server, emsp = emsp_server()
    yield emsp
    server.shutdown()


async def test_versions_answer_with_the_envelope_and_wrong_tokens_get_401_with_it(peer):
    versions = call("GET", peer.ocpi("versions"), TOKEN_A)
    assert versions.http == 200 and versions.body["status_code"] == 1000
    assert versions.body["data"] == [{"version": "2.2.1", "url": peer.ocpi("2.2.1")}]
    assert versions.headers["X-Request-ID"] and versions.headers["X-Correlation-ID"]
    details = call("GET", peer.ocpi("2.2.1"), TOKEN_A).body["data"]
    assert {(e["identifier"], e["role"]) for e in details["endpoints"]} >= {
        ("commands", "RECEIVER"),
        ("cdrs", "SENDER"),
        ("tokens", "RECEIVER"),
    }

    unknown = call("GET", peer.ocpi("versions"), "not-a-known-token")
    raw = urllib.request.Request(peer.ocpi("versions"), headers={"Authorization": f"Token {TOKEN_A}"})  # not Base64
    with pytest.raises(urllib.error.HTTPError) as unencoded:
        urllib.request.urlopen(raw, timeout=WAIT)
    token_a_elsewhere = call("GET", peer.ocpi("2.2.1/locations"), TOKEN_A)
    for answer in (unknown, Answer(401, {}, json.loads(unencoded.value.read())), token_a_elsewhere):
        assert answer.http == 401
        assert answer.body["status_code"] == 2000 and answer.body["timestamp"] and "data" not in answer.body


async def test_the_handshake_fetches_the_emsp_endpoints_with_token_b_and_a_second_post_is_405(peer, emsp):
    token_c = register(peer, emsp)
    versions = emsp.next("GET", "/emsp/versions")
    assert versions["headers"]["Authorization"] == auth(TOKEN_B)
    assert emsp.next("GET", "/emsp/2.2.1")["headers"]["Authorization"] == auth(TOKEN_B)

    again = call(
        "POST",
        peer.ocpi("2.2.1/credentials"),
        token_c,
        {"token": TOKEN_B, "url": f"{emsp.url}/emsp/versions", "roles": [EMSP_ROLE]},
    )
    assert (again.http, again.body["status_code"]) == (405, 2000)
    assert call("GET", peer.ocpi("versions"), TOKEN_A).http == 401  # token A is thrown away after registering
    assert call("GET", peer.ocpi("2.2.1/credentials"), token_c).body["data"]["token"] == token_c


async def test_locations_and_tariffs_are_paginated_with_link_total_count_and_limit(peer, emsp):
    token_c = register(peer, emsp)
    collected, url, pages = [], peer.ocpi("2.2.1/tariffs?limit=50"), 0
    while url:
        answer = call("GET", url, token_c)
        assert answer.http == 200 and answer.body["status_code"] == 1000
        assert answer.headers["X-Limit"] == "2" and answer.headers["X-Total-Count"] == "9"
        collected += answer.body["data"]
        link = answer.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
        assert link is None or link.endswith('; rel="next"')
        pages += 1
    assert pages == 5 and len({t["id"] for t in collected}) == 9

    future = call("GET", peer.ocpi("2.2.1/locations?date_from=2099-01-01T00:00:00Z"), token_c)
    assert future.body["data"] == [] and future.headers["X-Total-Count"] == "0" and "Link" not in future.headers
    one = call("GET", peer.ocpi("2.2.1/locations/LOC-1/EVSE-1/1"), token_c).body["data"]
    assert one["id"] == "1" and one["tariff_ids"] == ["T-SIMPLE"]
    assert call("GET", peer.ocpi("2.2.1/locations/NOPE"), token_c).http == 404
    bad = call("GET", peer.ocpi("2.2.1/locations?offset=-1"), token_c)
    assert (bad.http, bad.body["status_code"]) == (400, 2001)


async def test_bad_commands_are_refused_as_the_spec_says(peer, emsp):
    token_c = register(peer, emsp)
    url = peer.ocpi("2.2.1/commands/START_SESSION")
    not_json = call("POST", url, token_c, raw=b"{not json")
    assert (not_json.http, not_json.body["status_code"]) == (400, 2001)
    missing = call("POST", url, token_c, {"location_id": "LOC-1"})
    assert (missing.http, missing.body["status_code"]) == (200, 2001)
    assert "response_url" in missing.body["status_message"]
    unknown = call("POST", url, token_c, start_session(emsp, "LOC-404", "EVSE-1"))
    assert (unknown.http, unknown.body["status_code"]) == (200, 2003)
    stop = call(
        "POST",
        peer.ocpi("2.2.1/commands/STOP_SESSION"),
        token_c,
        {"response_url": f"{emsp.url}/r", "session_id": "S-404"},
    )
    assert stop.body["data"]["result"] == "UNKNOWN_SESSION"
    assert call("POST", peer.ocpi("2.2.1/commands/SELF_DESTRUCT"), token_c, {}).http == 404


async def test_a_started_session_is_pushed_charged_stopped_and_billed_with_a_verifiable_signed_cdr(peer, emsp):
    token_c = register(peer, emsp)
    await peer.control("scenario", {"signed": "valid", "kwh_per_second": 3.0, "tick_ms": 100, "result_delay_ms": 10})
    started = call("POST", peer.ocpi("2.2.1/commands/START_SESSION"), token_c, start_session(emsp, "LOC-1", "EVSE-2"))
    assert started.body["data"]["result"] == "ACCEPTED" and started.body["data"]["timeout"] > 0
    assert emsp.next("POST", "/commands/START_SESSION/1")["body"] == {"result": "ACCEPTED"}
    status = emsp.next("PATCH", "/emsp/2.2.1/locations/DE/EVP/LOC-1/EVSE-2")
    assert status["body"]["status"] == "CHARGING" and status["headers"]["OCPI-to-party-id"] == "EMS"
    put = emsp.next("PUT", "/emsp/2.2.1/sessions/DE/EVP/")
    session = put["body"]
    assert session["status"] == "ACTIVE" and session["cdr_token"]["uid"] == UID
    assert put["headers"]["Authorization"] == auth(TOKEN_B) and put["headers"]["X-Request-ID"]
    assert emsp.next("PATCH", f"/sessions/DE/EVP/{session['id']}")["body"]["kwh"] > 0

    stop = {"response_url": f"{emsp.url}/emsp/2.2.1/commands/STOP_SESSION/2", "session_id": session["id"]}
    assert call("POST", peer.ocpi("2.2.1/commands/STOP_SESSION"), token_c, stop).body["data"]["result"] == "ACCEPTED"
    assert emsp.next("POST", "/commands/STOP_SESSION/2")["body"] == {"result": "ACCEPTED"}
    while (patch := emsp.next("PATCH", f"/sessions/DE/EVP/{session['id']}"))["body"].get("status") != "COMPLETED":
        pass
    cdr = emsp.next("POST", "/emsp/2.2.1/cdrs")["body"]
    assert cdr["session_id"] == session["id"] and cdr["total_energy"] == patch["body"]["kwh"]
    assert cdr["total_cost"]["excl_vat"] == round(cdr["total_energy"] * 0.3, 4)  # T-ENERGY: 0.30 per kWh

    key = peer.meter_key
    begin, end = (ocmf.parse(base64.b64decode(v["signed_data"]).decode()) for v in cdr["signed_data"]["signed_values"])
    settlement = ocmf.signed_settlement(42, begin, end, key)  # verifies both, as the escrow's signed path will
    assert end.reading(ocmf.Reason.END).wh - begin.reading(ocmf.Reason.BEGIN).wh == round(cdr["total_energy"] * 1000)
    assert settlement[1] == end.reading(ocmf.Reason.END).wh
    energy = [d["volume"] for p in cdr["charging_periods"] for d in p["dimensions"] if d["type"] == "ENERGY"]
    assert sum(energy) == pytest.approx(cdr["total_energy"])

    pulled = call("GET", peer.ocpi("2.2.1/cdrs"), token_c)
    assert [c["id"] for c in pulled.body["data"]] == [cdr["id"]]
    assert not [v for v in await peer.violations() if not v["violation"].startswith("refused")]


async def test_a_tampered_end_value_does_not_verify(peer, emsp):
    token_c = register(peer, emsp)
    await peer.control("scenario", {"signed": "tampered", "tick_ms": 100, "result_delay_ms": 10, "cdr": "pull_only"})
    call("POST", peer.ocpi("2.2.1/commands/START_SESSION"), token_c, start_session(emsp, "LOC-1", "EVSE-1"))
    session = emsp.next("PUT", "/sessions/DE/EVP/")["body"]
    await peer.control("stop", {"session_id": session["id"]})
    [cdr] = call("GET", peer.ocpi("2.2.1/cdrs"), token_c).body["data"]
    begin, end = (ocmf.parse(base64.b64decode(v["signed_data"]).decode()) for v in cdr["signed_data"]["signed_values"])
    ocmf.verify(begin, peer.meter_key)
    with pytest.raises(ocmf.OCMFError):
        ocmf.verify(end, peer.meter_key)


async def test_down_resets_connections_until_up(peer, emsp):
    register(peer, emsp)
    await peer.control("down", {"mode": "reset"})
    with pytest.raises((ConnectionError, urllib.error.URLError)):
        call("GET", peer.ocpi("versions"), TOKEN_A)
    await peer.control("down", {"mode": "503"})
    assert call("GET", peer.ocpi("versions"), TOKEN_A).http == 503
    await peer.control("up", {})
    assert call("GET", peer.ocpi("versions"), "unknown").http == 401  # answering again


async def test_a_handshake_the_cpo_cannot_complete_answers_3001_and_registers_nothing(peer, emsp):
    credentials = {"token": TOKEN_B, "url": f"{emsp.url}/nothing-here", "roles": [EMSP_ROLE]}
    answer = call("POST", peer.ocpi("2.2.1/credentials"), TOKEN_A, credentials)
    assert (answer.http, answer.body["status_code"]) == (200, 3001)
    no_emsp = call(
        "POST", peer.ocpi("2.2.1/credentials"), TOKEN_A, {**credentials, "roles": [{**EMSP_ROLE, "role": "CPO"}]}
    )
    assert no_emsp.body["status_code"] == 3003
    assert call("GET", peer.ocpi("versions"), TOKEN_A).http == 200  # token A still admits a registration


async def test_put_rotates_token_c_delete_unregisters_and_revoke_locks_the_emsp_out(peer, emsp):
    token_c = register(peer, emsp)
    credentials = {"token": "token-b-2", "url": f"{emsp.url}/emsp/versions", "roles": [EMSP_ROLE]}
    token_c2 = call("PUT", peer.ocpi("2.2.1/credentials"), token_c, credentials).body["data"]["token"]
    assert token_c2 != token_c and call("GET", peer.ocpi("2.2.1/locations"), token_c).http == 401
    assert call("GET", peer.ocpi("2.2.1/locations"), token_c2).http == 200
    await peer.control("revoke", {})
    assert call("GET", peer.ocpi("2.2.1/locations"), token_c2).http == 401

    await peer.control("token-a", {"token": TOKEN_A})
    token_c3 = register(peer, emsp)
    assert call("DELETE", peer.ocpi("2.2.1/credentials"), token_c3).body["status_code"] == 1000
    assert call("DELETE", peer.ocpi("2.2.1/credentials"), token_c3).http == 401
    assert call("PUT", peer.ocpi("2.2.1/credentials"), TOKEN_A, credentials).http == 405  # not registered
    register(peer, emsp)  # token A admits a new registration after DELETE


async def test_tokens_pushed_by_the_emsp_are_kept_and_checked_against_the_url(peer, emsp):
    token_c = register(peer, emsp)
    token = start_session(emsp, "LOC-1", "EVSE-1")["token"] | {"type": "RFID", "uid": "04A1B2C3"}
    url = peer.ocpi("2.2.1/tokens/NL/EMS/04A1B2C3")
    assert call("PUT", url, token_c, token).http == 201
    assert call("PUT", url, token_c, token).http == 200
    assert call("GET", url, token_c).body["data"] == token
    assert call("PATCH", url, token_c, {"valid": False}).body["status_code"] == 2001  # no last_updated
    assert (
        call("PATCH", url, token_c, {"valid": False, "last_updated": "2026-12-06T12:30:00Z"}).body["status_code"]
        == 1000
    )
    assert call("GET", url, token_c).body["data"]["valid"] is False
    assert call("PUT", peer.ocpi("2.2.1/tokens/NL/EMS/OTHER"), token_c, token).body["status_code"] == 2001
    assert call("GET", peer.ocpi("2.2.1/tokens/NL/EMS/04A1B2C3?type=APP_USER"), token_c).http == 404


async def test_garbage_gets_an_ocpi_error_and_the_peer_keeps_serving(peer, emsp):
    token_c = register(peer, emsp)
    for path, raw in [
        ("2.2.1/commands/START_SESSION", b"[1,2,3]"),
        ("2.2.1/commands/STOP_SESSION", b"\xff\xfe"),
        ("2.2.1/tokens/NL/EMS/%E0%A4%A", b"{}"),
    ]:
        answer = call("POST" if "commands" in path else "PUT", peer.ocpi(path), token_c, raw=raw)
        assert 400 <= answer.http < 500 or answer.body["status_code"] == 2001, (path, answer)
        assert answer.body["status_code"] >= 2000 and answer.body["timestamp"]
    assert call("GET", peer.ocpi("2.2.1/locations"), token_c).http == 200
    assert not [v for v in await peer.violations() if "stand-in error" in v["violation"]]


async def test_sessions_pushed_in_order_pending_first_and_a_cdr_made_while_down_only_by_pull(peer, emsp):
    token_c = register(peer, emsp)
    await peer.control("scenario", {"pending_ms": 200, "tick_ms": 50, "result_delay_ms": 10, "cdr": "duplicate"})
    call("POST", peer.ocpi("2.2.1/commands/START_SESSION"), token_c, start_session(emsp, "LOC-2", "EVSE-4"))
    put = emsp.next("PUT", "/sessions/DE/EVP/")["body"]
    assert put["status"] == "PENDING"
    active = emsp.next("PATCH", f"/sessions/DE/EVP/{put['id']}")["body"]
    assert active["status"] == "ACTIVE" and active["start_date_time"] >= put["start_date_time"]
    await peer.control("stop", {"session_id": put["id"]})
    first, second = emsp.next("POST", "/emsp/2.2.1/cdrs")["body"], emsp.next("POST", "/emsp/2.2.1/cdrs")["body"]
    assert first == second  # the duplicate scenario POSTs the same CDR twice

    await peer.control("scenario", {"pending_ms": 0, "cdr": "push"})
    call("POST", peer.ocpi("2.2.1/commands/START_SESSION"), token_c, start_session(emsp, "LOC-2", "EVSE-4"))
    session = emsp.next("PUT", "/sessions/DE/EVP/")["body"]
    await peer.control("down", {"mode": "503"})
    await peer.control("stop", {"session_id": session["id"]})
    await peer.control("up", {})
    pulled = call("GET", peer.ocpi("2.2.1/cdrs?limit=1&offset=1"), token_c)
    assert pulled.headers["X-Total-Count"] == "2" and pulled.body["data"][0]["session_id"] == session["id"]
    cdr_id = pulled.body["data"][0]["id"]
    skipped = await peer.wait_log(lambda e: e.get("purpose") == f"CDR POST {cdr_id}")
    assert skipped["skipped"] == "platform down" and "http" not in skipped


async def test_real_time_authorization_before_a_start_and_for_an_rfid_tap(peer, emsp):
    token_c = register(peer, emsp)
    await peer.control("scenario", {"authorize": "before_start", "result_delay_ms": 10})
    call("POST", peer.ocpi("2.2.1/commands/START_SESSION"), token_c, start_session(emsp, "LOC-1", "EVSE-3"))
    asked = emsp.next("POST", "/authorize")
    assert asked["path"] == f"/emsp/2.2.1/tokens/{UID}/authorize?type=APP_USER"
    assert asked["body"] == {"location_id": "LOC-1", "evse_uids": ["EVSE-3"]}
    assert emsp.next("POST", "/commands/START_SESSION/1")["body"] == {"result": "ACCEPTED"}
    assert emsp.next("PUT", "/sessions/DE/EVP/")["body"]["authorization_reference"] == "AUTH-REF-1"

    tapped = await peer.control("tap", {"uid": "04AABBCC", "location_id": "LOC-2", "evse_uid": "EVSE-4"})
    assert tapped["started"] is True
    session = emsp.next("PUT", "/sessions/DE/EVP/")["body"]
    assert session["auth_method"] == "AUTH_REQUEST" and session["cdr_token"]["uid"] == "04AABBCC"
    refused = await peer.control("tap", {"uid": "UNKNOWN", "location_id": "LOC-2", "evse_uid": "EVSE-6"})
    assert refused["started"] is False


async def test_the_cpo_rotates_the_tokens_and_unregisters_through_the_emsp_credentials_endpoint(peer, emsp):
    token_c = register(peer, emsp)
    assert (await peer.control("update-credentials", {}))["ok"] is True
    put = emsp.next("PUT", "/emsp/2.2.1/credentials")
    assert put["headers"]["Authorization"] == auth(TOKEN_B) and "OCPI-to-party-id" not in put["headers"]
    new_token_c = put["body"]["token"]
    assert put["body"]["roles"][0]["role"] == "CPO" and new_token_c != token_c
    assert call("GET", peer.ocpi("2.2.1/locations"), token_c).http == 401
    assert call("GET", peer.ocpi("2.2.1/locations"), new_token_c).http == 200

    assert (await peer.control("unregister", {}))["ok"] is True
    assert emsp.next("DELETE", "/emsp/2.2.1/credentials")["headers"]["Authorization"] == auth("token-b-2")
    assert (await peer.control("state"))["registration"] is None
    assert call("GET", peer.ocpi("2.2.1/locations"), new_token_c).http == 401


async def test_a_cdr_for_a_session_the_emsp_never_heard_of(peer, emsp):
    token_c = register(peer, emsp)
    cdr_token = {
        "country_code": "NL",
        "party_id": "EMS",
        "uid": UID,
        "type": "APP_USER",
        "contract_id": "NL-EMS-C00000001",
    }
    made = await peer.control(
        "cdr", {"token": cdr_token, "location_id": "LOC-1", "evse_uid": "EVSE-2", "kwh": 7.5, "push": True}
    )
    posted = emsp.next("POST", "/emsp/2.2.1/cdrs")["body"]
    assert posted == made and posted["total_energy"] == 7.5 and posted["total_cost"]["excl_vat"] == 2.25
    assert [c["id"] for c in call("GET", peer.ocpi("2.2.1/cdrs"), token_c).body["data"]] == [made["id"]]


async def test_date_from_is_inclusive_date_to_exclusive_and_the_link_keeps_the_filters(peer, emsp):
    token_c = register(peer, emsp)
    stamp = call("GET", peer.ocpi("2.2.1/tariffs"), token_c).body["data"][0]["last_updated"]
    first = call("GET", peer.ocpi(f"2.2.1/tariffs?date_from={stamp}&limit=1"), token_c)
    assert first.headers["X-Total-Count"] == "9" and len(first.body["data"]) == 1
    link = urllib.parse.urlsplit(first.headers["Link"][1 : first.headers["Link"].index(">")])
    assert urllib.parse.parse_qs(link.query) == {"offset": ["1"], "limit": ["1"], "date_from": [stamp]}
    until = call("GET", peer.ocpi(f"2.2.1/tariffs?date_to={stamp}"), token_c)
    assert until.body["data"] == [] and until.headers["X-Total-Count"] == "0"
    not_utc = call("GET", peer.ocpi("2.2.1/tariffs?date_from=2026-12-06T12:00:00%2B00:00"), token_c)
    assert (not_utc.http, not_utc.body["status_code"]) == (400, 2001)  # types: +00:00 is not UTC


async def test_a_session_the_emsp_missed_is_put_again_whole(peer, emsp):
    token_c = register(peer, emsp)
    await peer.control("scenario", {"tick_ms": 50, "result_delay_ms": 10, "push_down": True})
    call("POST", peer.ocpi("2.2.1/commands/START_SESSION"), token_c, start_session(emsp, "LOC-1", "EVSE-1"))
    missed = await peer.wait_log(lambda e: e.get("purpose") == "Session PUT" and e.get("skipped") == "push_down")
    await peer.control("scenario", {"push_down": False})
    put = emsp.next("PUT", "/sessions/DE/EVP/")
    assert put["body"]["status"] == "ACTIVE" and put["body"]["kwh"] > 0 and missed["body"]["id"] == put["body"]["id"]
    assert emsp.next("PATCH", f"/sessions/DE/EVP/{put['body']['id']}")["body"]["kwh"] >= put["body"]["kwh"]
    emsp.forgets_sessions = True  # the next PATCH gets 404: the whole Session follows as a PUT
    emsp.next("PATCH", f"/sessions/DE/EVP/{put['body']['id']}")
    again = emsp.next("PUT", f"/sessions/DE/EVP/{put['body']['id']}")["body"]
    assert again["kwh"] >= put["body"]["kwh"] and again["cdr_token"] == put["body"]["cdr_token"]
