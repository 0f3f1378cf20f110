"""Wallet sessions at a station imported from the CSMS, end to end: the driver opens a session on chain,
the daemon sends START_SESSION to the independent CPO platform, its CommandResult and Session start the
session on chain, its kWh reach the live data, the EV leaves, the CDR settles the session once with the
cost of the chain's tariff; a start the charge point rejects (CommandResult REJECTED or TIMEOUT) is refunded;
a CDR POSTed twice settles once; our token revoked by the CSMS is said by /health and `ocpi status`; a CDR of a
session we never heard of is kept, not settled; a start while the CSMS is down is refunded; a Session that turns
ACTIVE only after the start timed out is stopped and settles nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core_client.daemon import Daemon
from core_client.ocpi.bridge import Bridge
from core_client.ocpi.models.enums import ModuleID
from core_client.ocpi.transport import Party
from core_client.sessions.jobs import JobKind, JobStatus
from core_client.sessions.machine import State
from ev_network.contracts import SessionState
from ev_network.pricing import price
from tools.harness.chain import TOKEN, Net
from tools.harness.core import Core, chain_events, funded_driver, open_session, until, wait_chain
from tools.harness.ocpi.bridged import bridged_station
from tools.harness.ocpi.peers import Cpo, cpo_platform

DEPOSIT = 20 * TOKEN


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[Cpo]:
    async with cpo_platform(tmp_path) as platform:
        await platform.control("scenario", {"kwh_per_second": 5, "tick_ms": 200, "result_delay_ms": 50})
        yield platform


@pytest.fixture
async def core(tmp_path: Path, clean_chain: Net, keyfile: Path, cpo: Cpo) -> AsyncIterator[tuple[Core, int]]:
    # EVSE-2: T-ENERGY, 0.30/kWh + 19 % VAT; the start times out after 5 s (FAST)
    async with bridged_station(clean_chain, tmp_path, keyfile, cpo, "EVSE-2", session_pull_after_s=2) as imported:
        yield imported[:2]


async def test_a_wallet_session_through_the_csms_settles_once_at_the_tariff(core, cpo: Cpo) -> None:
    daemon, station_id = core[0].daemon, core[1]
    net = core[0].net
    await cpo.control("scenario", {"cost_offset": 0.5})  # its CDR says 0.50 more than its tariff: not billed
    driver = await funded_driver(net, 0)
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.ACTIVE, timeout=30)
    token = await start_token(cpo)
    assert token["type"] == "APP_USER" and token["country_code"] == "DE" and token["party_id"] == "EVN"
    ocpi_session = await until(lambda: _cpo_session(daemon), 10, "the CSMS's session")
    await until(lambda: (daemon.service.session(session_id).meter_last or 0) > 0, 15, "energy in the live data")
    await cpo.control("stop", {"session_id": ocpi_session})  # the EV leaves: the session completes, its CDR follows
    await wait_chain(net, session_id, SessionState.SETTLED, timeout=30)
    [cdr] = (await cpo.control("state"))["cdrs"]
    energy_wh = round(cdr["total_energy"] * 1000)
    [settled] = chain_events(net, "SessionSettled", session_id)
    tariff = net.escrow().get_tariff(net.escrow().get_station(station_id).tariff_id)
    assert settled.args["cost"] == price(tariff, energy_wh) and energy_wh > 0  # the chain's tariff is billed
    [difference] = daemon.health()["ocpi"]["cost_differences"]  # and the CDR's other cost shown
    assert difference["cdr"] == cdr["id"] and difference["chain_cost_units"] == settled.args["cost"]
    transaction = daemon.ocpi.mirror.transaction_of(Party("DE", "EVP"), ocpi_session)
    recorded = daemon.records.find(transaction, "DE*EVP*E0002").record  # in the anchored transaction record
    assert (recorded.meter_start, recorded.meter_stop, recorded.stop_reason) == (0, energy_wh, "Remote")
    assert await cpo.violations() == []


@pytest.mark.parametrize("result", ["reject", "timeout"])  # CommandResult REJECTED, TIMEOUT
async def test_a_start_the_charge_point_rejects_is_refunded(core, cpo: Cpo, result: str) -> None:
    net, station_id = core[0].net, core[1]
    await cpo.control("scenario", {"start": result})
    driver = await funded_driver(net, 1)
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.CANCELLED, timeout=30)
    assert (await cpo.control("state"))["sessions"] == []


def _cpo_session(daemon: Daemon) -> str | None:
    """The id of the first Session the CSMS pushed to the daemon."""
    found = daemon.ocpi.mirror.all(ModuleID.SESSIONS)
    return found[0]["id"] if found else None


async def test_no_command_result_in_time_is_refunded(core, cpo: Cpo) -> None:
    net, station_id = core[0].net, core[1]
    await cpo.control("scenario", {"start": "no_result", "command_timeout": 1})
    session_id = await open_session(net, await funded_driver(net, 2), station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.CANCELLED, timeout=30)  # the start timeout (5 s here)


async def test_the_budget_stops_the_charge_through_stop_session(core, cpo: Cpo) -> None:
    net, station_id = core[0].net, core[1]
    deposit = TOKEN  # 0.357 per kWh: the budget is used up after about 2.7 kWh, half a second of charging here
    session_id = await open_session(net, await funded_driver(net, 3), station_id, 1, deposit)
    await wait_chain(net, session_id, SessionState.SETTLED, timeout=40)
    log = await cpo.control("log")
    assert any(e["direction"] == "in" and e["url"].endswith("/commands/STOP_SESSION") for e in log)
    [settled] = chain_events(net, "SessionSettled", session_id)
    assert 0 < settled.args["cost"] <= deposit


async def test_the_drivers_stop_on_chain_and_a_cdr_that_only_comes_by_pull(core, cpo: Cpo, caplog) -> None:
    caplog.set_level(logging.INFO, "core_client.ocpi")
    daemon, net, station_id = core[0].daemon, core[0].net, core[1]
    await cpo.control("scenario", {"cdr": "pull_only"})
    driver = await funded_driver(net, 4)
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.ACTIVE, timeout=30)
    await until(lambda: (daemon.service.session(session_id).meter_last or 0) > 0, 15, "energy in the live data")
    await asyncio.to_thread(net.escrow(driver).request_stop, session_id)
    await cpo.wait_log(lambda e: e["direction"] == "in" and e["url"].endswith("/commands/STOP_SESSION"))
    transaction = daemon.service.session(session_id).transaction_id
    taken = f"STOP_SESSION for transaction {transaction}: ACCEPTED"  # its CommandResult is awaited, not "unknown"
    await until(lambda: any(r.getMessage() == taken for r in caplog.records), 10, "the STOP_SESSION result taken")
    assert not any("nobody waits" in r.getMessage() for r in caplog.records)
    [cdr] = await cpo.cdrs()
    assert daemon.ocpi.mirror.get(ModuleID.CDRS, Party("DE", "EVP"), cdr["id"]) is None  # never pushed
    await daemon.ocpi.pull()
    await wait_chain(net, session_id, SessionState.SETTLED, timeout=30)
    [settled] = chain_events(net, "SessionSettled", session_id)
    assert settled.args["meterStop"] - settled.args["meterStart"] == round(cdr["total_energy"] * 1000)


async def test_a_session_the_csms_never_pushes_is_pulled_before_the_start_times_out(core, cpo: Cpo) -> None:
    net, station_id = core[0].net, core[1]
    await cpo.control("scenario", {"push_down": True})  # CommandResults come; Sessions and CDRs only by pull
    session_id = await open_session(net, await funded_driver(net, 7), station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.ACTIVE, timeout=30)
    log = await cpo.control("log")
    pulls = [e for e in log if e["direction"] == "in" and e["method"] == "GET" and "/sessions" in e["url"]]
    assert pulls and all("date_from=" in e["url"] for e in pulls)
    pushed = [e for e in log if e["direction"] == "out" and "Session" in (e.get("purpose") or "")]
    assert pushed and all(e.get("skipped") == "push_down" for e in pushed)
    assert await cpo.violations() == []


@pytest.mark.parametrize("signed, settles", [("valid", True), ("tampered", False)])
async def test_a_signed_cdr_settles_through_the_signed_path_and_a_tampered_one_is_held(
    core, cpo: Cpo, signed, settles
) -> None:
    daemon, net, station_id = core[0].daemon, core[0].net, core[1]
    await asyncio.to_thread(net.escrow(net.operator).set_meter_public_key, station_id, bytes.fromhex(cpo.meter_key))
    await cpo.control("scenario", {"signed": signed})
    driver = await funded_driver(net, 5)
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.ACTIVE, timeout=30)
    token = await start_token(cpo)
    assert token["uid"].startswith("EV") and not token["uid"].startswith("EVN")  # the idTag the meter signs
    await until(lambda: (daemon.service.session(session_id).meter_last or 0) > 0, 15, "energy in the live data")
    await cpo.control("stop", {"session_id": _cpo_session(daemon)})
    if settles:
        await wait_chain(net, session_id, SessionState.SETTLED, timeout=30)
        [cdr] = await cpo.cdrs()
        [settled] = chain_events(net, "SessionSettled", session_id)
        assert settled.args["meterStop"] - settled.args["meterStart"] == round(cdr["total_energy"] * 1000)
        transaction = daemon.ocpi.mirror.transaction_of(Party("DE", "EVP"), cdr["session_id"])
        recorded = daemon.records.find(transaction, "DE*EVP*E0002").record
        assert recorded.signed_meter_data.count("OCMF|") == 2  # the Begin and End records, as signed
    else:
        await until(lambda: daemon.service.session(session_id).state is State.HELD, 20, "the session HELD")
        assert "meter records refused" in daemon.service.session(session_id).last_error
        assert (await asyncio.to_thread(net.escrow().get_session, session_id)).state is SessionState.ACTIVE


async def test_the_csms_down_mid_session_the_stop_waits_for_it_and_the_cdr_is_pulled(core, cpo: Cpo) -> None:
    daemon, net, station_id = core[0].daemon, core[0].net, core[1]
    driver = await funded_driver(net, 6)
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.ACTIVE, timeout=30)
    await until(lambda: (daemon.service.session(session_id).meter_last or 0) > 0, 15, "energy in the live data")
    await cpo.control("down", {"mode": "reset"})  # connections reset, nothing pushed (and nothing queued)
    await asyncio.to_thread(net.escrow(driver).request_stop, session_id)
    await until(lambda: daemon.service.session(session_id).stop_wanted, 10, "the stop wanted")
    assert (await cpo.control("state"))["cdrs"] == []  # STOP_SESSION cannot reach it while it is down
    await cpo.control("up", {})
    await cpo.wait_log(lambda e: e["direction"] == "in" and e["url"].endswith("/commands/STOP_SESSION"), timeout=30)
    await cpo.cdrs()
    await daemon.ocpi.pull()  # whether or not its CDR push got through, it is taken once
    await wait_chain(net, session_id, SessionState.SETTLED, timeout=30)
    assert len(chain_events(net, "SessionSettled", session_id)) == 1


async def start_token(cpo: Cpo) -> dict:
    """The Token of the first START_SESSION the CPO platform received."""
    log = await cpo.control("log")
    return next(e for e in log if e["direction"] == "in" and e["url"].endswith("/START_SESSION"))["body"]["token"]


@pytest.mark.issue(18)
async def test_a_cdr_posted_twice_settles_once_and_the_second_post_is_refused(core, cpo: Cpo) -> None:
    daemon, net, station_id = core[0].daemon, core[0].net, core[1]
    await cpo.control("scenario", {"cdr": "duplicate"})  # the CSMS POSTs its CDR, then POSTs it again
    driver = await funded_driver(net, 8)
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.ACTIVE, timeout=30)
    await until(lambda: (daemon.service.session(session_id).meter_last or 0) > 0, 15, "energy in the live data")
    await asyncio.to_thread(net.escrow(driver).request_stop, session_id)

    def cdr_post(entry: dict) -> bool:
        return entry["direction"] == "out" and entry["method"] == "POST" and entry["url"].endswith("/cdrs")

    first = await cpo.wait_log(cdr_post, timeout=30)
    second = await cpo.wait_log(cdr_post, since=first["seq"])
    assert (first["http"], first["status_code"]) == (201, 1000)
    assert (second["http"], second["status_code"]) == (200, 2000)  # a CDR is never replaced
    await wait_chain(net, session_id, SessionState.SETTLED, timeout=30)
    assert len(chain_events(net, "SessionSettled", session_id)) == 1
    # the stand-in lists every refusal of its requests: here only that of the second POST
    assert [v["seq"] for v in await cpo.violations()] == [second["seq"]]


@pytest.mark.issue(18)
async def test_our_token_revoked_is_said_by_health_and_status_and_a_start_is_refunded(core, cpo: Cpo) -> None:
    daemon, net, station_id = core[0].daemon, core[0].net, core[1]
    await cpo.control("revoke", {})  # the CSMS answers our token C with 401 from now on
    session_id = await open_session(net, await funded_driver(net, 9), station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.CANCELLED, timeout=30)
    refused = daemon.health()["ocpi"]["token_refused"]
    assert refused and "the CSMS refused our token" in refused and "core-client ocpi update" in refused
    status = Bridge(daemon.settings.ocpi, daemon.settings.database).status()
    assert status[-1] == f"WARNING: {refused}"
    assert (await cpo.control("state"))["sessions"] == []


@pytest.mark.issue(18)
async def test_a_cdr_of_a_session_we_never_heard_of_is_kept_not_settled(core, cpo: Cpo, caplog) -> None:
    """At an imported station, a CDR whose session the CSMS never told us of (an RFID session, say): kept in the
    mirror and answered, no transaction, nothing settled (and POSTed again: refused, still nothing settled)."""
    caplog.set_level(logging.INFO, "core_client.ocpi")
    daemon = core[0].daemon
    rfid = {"country_code": "DE", "party_id": "EVN", "uid": "RFID-0001", "type": "RFID", "contract_id": "DE-EVN-C1"}
    cdr = await cpo.control("cdr", {"token": rfid, "location_id": "LOC-1", "evse_uid": "EVSE-2", "push": True})
    kept = daemon.ocpi.mirror.get(ModuleID.CDRS, Party("DE", "EVP"), cdr["id"])
    assert kept is not None and kept["session_id"] == cdr["session_id"]
    assert daemon.ocpi.mirror.transaction_of(Party("DE", "EVP"), cdr["session_id"]) is None
    assert any(f"CDR {cdr['id']} recorded" in r.getMessage() for r in caplog.records)
    assert (await cpo.control("repost-cdr", {"cdr_id": cdr["id"]}))["status_code"] == 2000
    assert daemon.store.jobs(*JobStatus) == []  # no job at all: nothing started, nothing settled


@pytest.mark.issue(18)
async def test_a_start_while_the_csms_is_down_is_refunded_and_nothing_starts_there(core, cpo: Cpo) -> None:
    net, station_id = core[0].net, core[1]
    await cpo.control("down", {"mode": "503"})
    session_id = await open_session(net, await funded_driver(net, 1), station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.CANCELLED, timeout=30)
    await cpo.control("up", {})
    assert (await cpo.control("state"))["sessions"] == []
    starts = [e for e in await cpo.control("log") if e["direction"] == "in" and e["url"].endswith("/START_SESSION")]
    assert starts and all(e.get("refused") == "down (503)" for e in starts)


@pytest.mark.issue(18)
async def test_a_start_accepted_after_the_start_timed_out_is_stopped_and_settles_nothing(core, cpo: Cpo) -> None:
    """The CSMS accepts the start but its Session turns ACTIVE only after the start timeout refunded the
    deposit: that Session is refused, STOP_SESSION sent, and its CDR settles nothing."""
    daemon, net, station_id = core[0].daemon, core[0].net, core[1]
    await cpo.control("scenario", {"pending_ms": 8000})  # PENDING, then ACTIVE; the start times out after 5 s
    session_id = await open_session(net, await funded_driver(net, 2), station_id, 1, DEPOSIT)
    await wait_chain(net, session_id, SessionState.CANCELLED, timeout=30)
    await cpo.wait_log(lambda e: e["direction"] == "in" and e["url"].endswith("/commands/STOP_SESSION"), timeout=30)
    [cdr] = await cpo.cdrs()
    await until(lambda: daemon.ocpi.mirror.get(ModuleID.CDRS, Party("DE", "EVP"), cdr["id"]), 20, "the CDR taken")
    assert chain_events(net, "SessionSettled", session_id) == []
    assert [job.kind for job in daemon.store.jobs(*JobStatus)] == [JobKind.REJECT]  # the refund, nothing else
