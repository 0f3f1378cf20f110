"""Who may open an OCPP link to a real daemon, and what is logged about those who may not: unknown or
unauthenticated charge points refused at the handshake, boots of charge points not registered for this
operator rejected, a second connection replacing the first, forged log lines in the path, handshake floods."""

from __future__ import annotations

import asyncio
import base64
import logging
from urllib.parse import quote

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from core_client.ocpp.server import HandshakeFailures
from ev_network.contracts import SessionState
from simulator.charge_point import BootRejected, SimChargePoint
from tools.harness.chain import TARIFF, TOKEN
from tools.harness.core import (
    QUICK_CHARGE,
    Core,
    cp_ids,
    funded_driver,
    open_session,
    running_core,
    until,
    wait_chain,
)

DEPOSIT = 20 * TOKEN


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_unknown_or_unauthenticated_charge_points_are_refused_at_the_handshake(core: Core, keyfile):
    cases = [
        (core.a, _basic(core.a, "wrong password"), ["ocpp1.6"], 401),
        ("CP-UNKNOWN", _basic("CP-UNKNOWN", "whatever"), ["ocpp1.6"], 401),
        (core.a, {}, ["ocpp1.6"], 401),
        (core.b, _basic(core.a, core.passwords[core.a]), ["ocpp1.6"], 401),  # A's credentials on B's path
        (core.a, {"Authorization": "Basic !!!"}, ["ocpp1.6"], 401),
        (core.a, _basic(core.a, core.passwords[core.a]), None, 400),
        (core.a, _basic(core.a, core.passwords[core.a]), ["ocpp2.0.1"], 400),
    ]
    for cp_id, headers, subprotocols, status in cases:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(f"{core.url}/{cp_id}", additional_headers=headers, subprotocols=subprotocols)
        assert refused.value.response.status_code == status, (cp_id, headers, subprotocols)
    assert core.daemon.service.links == {}


async def test_boot_is_rejected_for_a_charge_point_not_registered_for_this_operator(clean_chain, tmp_path, keyfile):
    net = clean_chain
    ours, foreign, unregistered = cp_ids("OURS", "FOREIGN", "NOWHERE")
    await asyncio.to_thread(net.add_station, foreign, 1, TARIFF, net.operator2)
    async with running_core(net, tmp_path, keyfile, {ours: 1}) as core:
        for cp_id in (foreign, unregistered):
            core.passwords[cp_id] = "pw"
        core.daemon.settings.charge_points.update({foreign: "pw", unregistered: "pw"})
        for cp_id in (foreign, unregistered):
            with pytest.raises(BootRejected):
                await SimChargePoint.connect(core.url, cp_id, "pw", 1)
        assert (await core.connect(ours, QUICK_CHARGE, 1)).boot_status == "Accepted"
        # a station registered while the daemon runs is picked up from its StationRegistered event
        [late] = cp_ids("LATE")
        late_id = await asyncio.to_thread(net.add_station, late, 3)
        await until(lambda: core.daemon.store.stations().get(late_id) == (late, 3), 5, "the new station")
        assert foreign not in [cp for cp, _ in core.daemon.store.stations().values()]


async def test_a_second_connection_of_a_charge_point_replaces_the_first(core: Core):
    net = core.net
    first = await core.connect(core.a, QUICK_CHARGE)
    second = await core.connect(core.a, QUICK_CHARGE)
    await asyncio.wait_for(first.closed.wait(), 5)
    assert core.daemon.service.links[core.a]._connection.remote_address == second._connection.local_address
    driver = await funded_driver(net, 5)
    session_id = await open_session(net, driver, core.stations[core.a], 1, DEPOSIT)
    await second.wait_for_transaction(1, timeout=10)
    await wait_chain(net, session_id, SessionState.ACTIVE)
    assert first.connector(1).transaction_id is None


@pytest.mark.issue(9, item=6)
async def test_a_forged_line_in_the_handshake_path_stays_inside_one_log_line(core: Core, caplog):
    forged = "CP\n2026-01-01 00:00:00,000 INFO    core_client: session 0xdead: settled cost=0"
    with caplog.at_level(logging.INFO, logger="core_client"):
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(f"{core.url}/{quote(forged)}", subprotocols=["ocpp1.6"])
        await until(lambda: any("refused" in r.getMessage() for r in caplog.records), 5, "the refusal logged")
    lines = [r.getMessage() for r in caplog.records]
    assert all("\n" not in line and "\r" not in line for line in lines), lines
    assert any("\\n2026-01-01" in line for line in lines)


@pytest.mark.issue(9, item=9)
async def test_failed_handshakes_log_one_line_not_a_traceback_each(core: Core, caplog):
    port = core.daemon.ocpp.address[1]
    ws_log = logging.getLogger("core_client.websockets")
    [failures] = [f for f in ws_log.filters if isinstance(f, HandshakeFailures)]

    def failed() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == ws_log.name and r.levelno >= logging.WARNING]

    with caplog.at_level(logging.INFO, logger=ws_log.name):
        for _ in range(40):  # half-open: a partial request, then the socket goes away
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /CP-x HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            writer.transport.abort()
        # every one of the 40 failed handshakes has been either logged or held back
        await until(lambda: len(failed()) + failures.throttle.held_back >= 40, 10, "40 failed handshakes handled")
    logged = failed()
    assert 1 <= len(logged) <= 2, [r.getMessage() for r in logged]  # was 40 tracebacks
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in logged)
    assert "opening handshake failed" in logged[0].getMessage()


async def _extensions_answered(core: Core) -> str | None:
    """The Sec-WebSocket-Extensions the daemon answers to a charge point that offers permessage-deflate."""
    cp_id = core.a
    async with websockets.connect(
        f"{core.url}/{cp_id}",
        additional_headers=_basic(cp_id, core.passwords[cp_id]),
        subprotocols=["ocpp1.6"],
        compression="deflate",
    ) as ws:
        return ws.response.headers.get("Sec-WebSocket-Extensions")


@pytest.mark.issue(21, item=4)
async def test_frames_are_compressed_with_charge_points_that_offer_it_by_default(core: Core):
    assert "permessage-deflate" in (await _extensions_answered(core) or "")


@pytest.mark.issue(21, item=4)
@pytest.mark.core_settings(ocpp_compression=False)
async def test_with_ocpp_compression_off_a_charge_point_offering_deflate_gets_plain_frames(core: Core):
    assert await _extensions_answered(core) is None
