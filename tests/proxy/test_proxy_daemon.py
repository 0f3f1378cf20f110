"""Proxy mode in the real daemon: the Core Client in front of a CSMS that is not ours (npm's ocpp-rpc
RPCServer in strict mode, tests/interop/ocpp_rpc_csms.js), raw charge points, a real Anvil. The CSMS runs
its own card sessions (recorded, never settled) and sees every charge point message; chain sessions
settle under the CSMS's transaction id; the Core Client's own CALLs never reach the CSMS."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core_client.proxy.config import UpstreamSettings
from ev_network.contracts import SessionState
from ev_network.records import verify_export
from tools.devchain import free_port
from tools.harness.chain import TOKEN, Net
from tools.harness.core import (
    Core,
    RawCP,
    chain_events,
    cp_ids,
    funded_driver,
    open_session,
    running_core,
    settings_for,
    spawn_daemon,
    stop_daemon,
    until,
    wait_chain,
    wait_health,
    write_config,
)
from tools.harness.upstream_relay import Csms, meter, start, stop

QUICK = {"response_timeout_s": 2, "reconnect_min_s": 0.1, "reconnect_max_s": 0.3, "resend_after_s": 10}


def upstream(csms: Csms, tmp_path: Path) -> UpstreamSettings:
    return UpstreamSettings(url=csms.url, pass_through=True, outbox=tmp_path / "outbox.sqlite", **QUICK)


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    running = await Csms(tmp_path / "csms.jsonl").start()
    yield running
    await running.stop()
    # strict mode refused nothing, and no answer to a CALL it never sent (the Core Client's own) reached it
    assert not running.received(kinds=("invalid", "bad_message")), "the CSMS got frames it refused"


def at(connector: int, payload: dict) -> dict:
    return {**payload, "connectorId": connector}


async def chain_session_started(core: Core, raw: RawCP, cp: str, connector: int) -> tuple[int, str]:
    """A driver opens a session at ``cp``; the Core Client's RemoteStart reaches the raw charge point,
    which starts the transaction. Returns (session id, the StartTransaction's answer)."""
    driver = await funded_driver(core.net, 0)
    session_id = await open_session(core.net, driver, core.stations[cp], connector, 20 * TOKEN)
    remote = await raw.next_call("RemoteStartTransaction")
    id_tag = remote[3]["idTag"]
    return session_id, (await raw.call("StartTransaction", at(connector, start(id_tag, 2000))))[2]


async def test_proxy_mode_csms_sessions_are_recorded_never_settled_and_chain_sessions_use_its_ids(
    clean_chain: Net, tmp_path: Path, keyfile: Path, csms: Csms
) -> None:
    net = clean_chain
    [cp] = cp_ids("CPP")
    settings = {"upstream": upstream(csms, tmp_path), "anchor_every_records": 2}
    async with running_core(net, tmp_path, keyfile, {cp: 2}, **settings) as core:
        raw = await core.raw(cp)
        await until(lambda: core.daemon.service.online(cp), 5, "the charge point online")

        # the CSMS's own RemoteStart reaches the charger, its answer returns to the CSMS
        csms.command(identity=cp, method="RemoteStartTransaction", params={"connectorId": 2, "idTag": "CARD-7"})
        remote = await raw.next_call("RemoteStartTransaction")
        assert remote[3] == {"connectorId": 2, "idTag": "CARD-7"}
        assert (await csms.event("result"))["result"] == {"status": "Accepted"}
        card = (await raw.call("StartTransaction", at(2, start("CARD-7", 500))))[2]
        assert card == {"transactionId": 1001, "idTagInfo": {"status": "Accepted"}}  # the CSMS's card

        # a chain session: the chain's idTagInfo, the CSMS's transaction id
        session_id, paid = await chain_session_started(core, raw, cp, 1)
        assert paid == {"transactionId": 1002, "idTagInfo": {"status": "Accepted"}}
        await wait_chain(net, session_id, SessionState.ACTIVE)
        [started] = chain_events(net, "SessionStarted", session_id)
        assert started.args["transactionId"] == 1002

        for tx, wh in ((1001, 900), (1002, 2400)):
            await raw.call("MeterValues", {**meter(tx, wh), "connectorId": 1 + (tx == 1001)})
        await raw.call("StopTransaction", stop(1001, 1500))
        await raw.call("StopTransaction", stop(1002, 3000))
        await wait_chain(net, session_id, SessionState.SETTLED)
        [settled] = chain_events(net, "SessionSettled", session_id)
        assert settled.args["meterStop"] == 3000
        health = await until(
            lambda: (h := core.daemon.health())["records"]["anchored"] == 2 and h, 15, "both records anchored"
        )
        assert health["upstream"] == {"csms_connected": [cp], "outbox": 0}
        records = core.daemon.records
        assert [(e.record.transaction_id, e.record.meter_stop) for e in records.entries()] == [
            (1001, 1500),
            (1002, 3000),
        ]
        card_record = records.entries()[0]
        assert card_record.record.matches_id_tag("CARD-7")
        verified = verify_export(records.export(card_record, net.operator.address), records.anchors, net.escrow())
        assert (verified.anchor.anchor_id, verified.anchor.count) == (0, 2)  # the CSMS's session, anchored
        assert core.daemon.store.get_transaction(1001).session_id is None  # observed, never a chain session
        assert [f[2] for f in raw.received if f[0] == 2] == ["RemoteStartTransaction"] * 2  # the CSMS's, ours
        await raw.close()

    seen = [(e["method"], e["params"].get("transactionId")) for e in csms.received(cp)]
    assert seen == [
        ("BootNotification", None),
        ("StartTransaction", None),
        ("StartTransaction", None),
        ("MeterValues", 1001),
        ("MeterValues", 1002),
        ("StopTransaction", 1001),
        ("StopTransaction", 1002),
    ]
    assert [e["method"] for e in csms.received(cp, ("result",))] == ["RemoteStartTransaction"]  # its own only


async def test_csms_down_in_the_middle_of_both_kinds_loses_nothing_keeps_order_and_settles(
    clean_chain: Net, tmp_path: Path, keyfile: Path, csms: Csms
) -> None:
    net = clean_chain
    [cp] = cp_ids("CPD")
    async with running_core(net, tmp_path, keyfile, {cp: 2}, upstream=upstream(csms, tmp_path)) as core:
        raw = await core.raw(cp)
        await until(lambda: core.daemon.service.online(cp), 5, "the charge point online")
        assert (await raw.call("StartTransaction", at(2, start("CARD-1", 500))))[2]["transactionId"] == 1001
        session_id, paid = await chain_session_started(core, raw, cp, 1)
        assert paid["transactionId"] == 1002
        await wait_chain(net, session_id, SessionState.ACTIVE)
        repeat = await raw.call("StartTransaction", at(1, start(csms.received(cp)[-1]["params"]["idTag"], 2000)))
        assert repeat[2]["transactionId"] == 1002  # a resent start keeps its id (the CSMS's second, 1003, unused)

        await csms.stop()  # SIGKILL: both sessions go on without it
        await until(lambda: not core.daemon.proxy.upstreams[cp].connected, 5, "the CSMS gone")
        await raw.call("MeterValues", {**meter(1001, 900), "connectorId": 2})
        await raw.call("MeterValues", meter(1002, 2400))
        assert (await raw.call("StopTransaction", stop(1002, 3000)))[0] == 3
        await wait_chain(net, session_id, SessionState.SETTLED)  # settled while the CSMS is down
        assert (await raw.call("StopTransaction", stop(1001, 1500)))[0] == 3
        offline = (await raw.call("StartTransaction", at(2, start("CARD-2", 1500))))[2]
        assert offline == {"transactionId": 2_000_000_000, "idTagInfo": {"status": "Accepted"}}
        await raw.call("StopTransaction", stop(offline["transactionId"], 1700))
        assert core.daemon.health()["upstream"]["outbox"] == 6

        await csms.start()  # back: the outbox goes out in order, once
        await until(lambda: core.daemon.health()["upstream"]["outbox"] == 0, 15, "the outbox delivered")
        assert [(e.record.transaction_id, e.record.meter_stop) for e in core.daemon.records.entries()] == [
            (1002, 3000),
            (1001, 1500),
            (2_000_000_000, 1700),
        ]
        await raw.close()

    seen = [(e["method"], e["params"].get("transactionId"), e["params"].get("idTag")) for e in csms.received(cp)]
    paid_tag = seen[2][2]
    assert paid_tag.startswith("EVN")  # the chain session's idTag, which the CSMS does not know
    assert seen == [
        ("BootNotification", None, None),
        ("StartTransaction", None, "CARD-1"),
        ("StartTransaction", None, paid_tag),
        ("StartTransaction", None, paid_tag),  # the repeat: the CSMS must tolerate a transaction never stopped
        ("MeterValues", 1001, None),
        ("MeterValues", 1002, None),
        ("StopTransaction", 1002, None),
        ("StopTransaction", 1001, None),
        ("StartTransaction", None, "CARD-2"),
        ("StopTransaction", 1004, None),  # the offline id rewritten to the id the CSMS gave it later
    ]
    assert len(chain_events(net, "SessionSettled", session_id)) == 1


async def test_core_client_killed_in_proxy_mode_sessions_finish_and_settle_exactly_once(
    clean_chain: Net, tmp_path: Path, keyfile: Path, csms: Csms
) -> None:
    net = clean_chain
    [cp] = cp_ids("CPK")
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    settings = settings_for(
        net,
        tmp_path,
        keyfile,
        {cp: "pw-kill"},
        listen_port=free_port(),
        control_port=free_port(),
        upstream=upstream(csms, tmp_path),
    )
    config = write_config(tmp_path / "core.toml", settings)
    url, control = f"ws://127.0.0.1:{settings.listen_port}", f"http://127.0.0.1:{settings.control_port}"
    log_file = tmp_path / "daemon.log"
    driver = await funded_driver(net, 0)

    daemon = spawn_daemon(config, log_file)
    try:
        await wait_health(control)
        raw = await RawCP.connect(url, cp, "pw-kill")
        assert (await raw.boot())[2]["status"] == "Accepted"
        assert (await raw.call("StartTransaction", at(2, start("CARD-1", 500))))[2]["transactionId"] == 1001
        session_id = await open_session(net, driver, station_id, 1, 20 * TOKEN)
        id_tag = (await raw.next_call("RemoteStartTransaction", timeout=15))[3]["idTag"]
        assert (await raw.call("StartTransaction", at(1, start(id_tag, 2000))))[2]["transactionId"] == 1002
        await wait_chain(net, session_id, SessionState.ACTIVE)
        await raw.call("StopTransaction", stop(1002, 3000))  # answered: the settle is queued (maybe sent) ...
        daemon.send_signal(signal.SIGKILL)  # ... and the Core Client dies at once
        daemon.wait(10)
        await raw.close()

        daemon = spawn_daemon(config, log_file)
        await wait_health(control)
        raw = await RawCP.connect(url, cp, "pw-kill")  # the charge point reconnects
        assert (await raw.boot())[2]["status"] == "Accepted"
        await raw.call("StopTransaction", stop(1002, 3000))  # it did not know its stop was answered
        await raw.call("MeterValues", {**meter(1001, 900), "connectorId": 2})
        await raw.call("StopTransaction", stop(1001, 1500))
        await wait_chain(net, session_id, SessionState.SETTLED)
        health = await until(lambda: (h := _health(control)) and h["records"]["logged"] == 2 and h, 10, "records")
        assert health["upstream"] == {"csms_connected": [cp], "outbox": 0}
        await raw.close()
    finally:
        stop_daemon(daemon)
    assert daemon.returncode == 0, log_file.read_text()[-3000:]
    [settled] = chain_events(net, "SessionSettled", session_id)
    assert settled.args["meterStop"] == 3000
    seen = [(e["method"], e["params"].get("transactionId")) for e in csms.received(cp)]
    assert seen == [
        ("BootNotification", None),
        ("StartTransaction", None),
        ("StartTransaction", None),
        ("StopTransaction", 1002),
        ("BootNotification", None),
        ("StopTransaction", 1002),  # the charge point's own repeat: passed on as it sent it
        ("MeterValues", 1001),
        ("StopTransaction", 1001),
    ]


def _health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=2) as response:
        return json.loads(response.read())
