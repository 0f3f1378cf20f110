"""The chain worker on its own (store, session service, the operator's key, real Anvil) in its crash
windows: a send recorded or not before a restart, a dropped transaction, a reverting batch, sessions that
read Closed on chain, a start of a cancelled session, and piled-up starts as one startBatch."""

from __future__ import annotations

import asyncio
import dataclasses

from core_client.chain.watcher import ChainWorker
from core_client.daemon import Daemon, make_web3
from core_client.sessions.jobs import JobKind, SettleArgs, StartArgs
from core_client.sessions.machine import SessionRecord, State
from core_client.sessions.service import SessionService
from core_client.storage.store import Store
from ev_network.contracts import Escrow, SessionState
from ev_network.pricing import price
from ev_network.session_ids import hex_session_id, lane_of
from ev_network.tx import TxSender
from tools.harness.chain import TARIFF, TIMED_TARIFF, TOKEN
from tools.harness.contracts import latest_timestamp, set_next_timestamp
from tools.harness.core import (
    PASSWORD,
    chain_events,
    cp_ids,
    funded_driver,
    open_session,
    session_record,
    settings_for,
    until,
)

DEPOSIT = 20 * TOKEN


def _worker_parts(net, tmp_path, keyfile, cp: str):
    """The daemon's chain side on its own: store, session service, chain worker (operator's key)."""
    settings = settings_for(net, tmp_path, keyfile, {cp: "pw"})
    store = Store(tmp_path / "worker.sqlite")
    service = SessionService(settings, store)
    w3 = make_web3(settings)
    worker = ChainWorker(Escrow(w3, net.deployment, TxSender(w3, net.operator)), store, service, batch_window=0)
    return store, service, worker


async def _active_session(net, driver, station_id: int, transaction_id: int, meter_start: int) -> int:
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    await asyncio.to_thread(net.escrow(net.operator).start, session_id, transaction_id, meter_start)
    return session_id


def _stopped_record(session_id: int, station_id: int, cp: str, driver, transaction_id: int, start: int, stop: int):
    return session_record(
        session_id,
        cp,
        driver.address,
        State.STOPPED,
        station_id=station_id,
        deposit=DEPOSIT,
        transaction_id=transaction_id,
        meter_start=start,
        meter_stop=stop,
    )


def _queue_settle(
    store: Store,
    record: SessionRecord,
    status: str = "pending",
    tx_hash: str | None = None,
    ended_at: int | None = None,
) -> None:
    store.insert_session(record)
    store.enqueue(
        JobKind.START,
        record.session_id,
        StartArgs(transaction_id=record.transaction_id, meter_start=record.meter_start),
    )
    store.update_job(store.job(JobKind.START, record.session_id).id, status="done")
    store.enqueue(JobKind.SETTLE, record.session_id, SettleArgs(meter_stop=record.meter_stop, ended_at=ended_at))
    if status != "pending":
        store.update_job(store.job(JobKind.SETTLE, record.session_id).id, status=status, tx_hash=tx_hash, attempts=1)


async def _work(worker: ChainWorker, store: Store, rounds: int = 20) -> None:
    for _ in range(rounds):
        await worker.step()
        if not store.jobs("pending", "sent"):
            return
        await asyncio.sleep(0.05)


async def test_restart_after_send_recorded_checks_the_receipt_and_does_not_resend(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("SENT")
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    driver = await funded_driver(net, 7)
    session_id = await _active_session(net, driver, station_id, 7, 100)
    # the previous run sent the settle and recorded its hash, then died before the receipt
    tx_hash = await asyncio.to_thread(net.escrow(net.operator).settle, session_id, 600, wait=False)
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)
    _queue_settle(
        store, _stopped_record(session_id, station_id, cp, driver, 7, 100, 600), "sent", "0x" + bytes(tx_hash).hex()
    )
    await _work(worker, store)
    job = store.job(JobKind.SETTLE, session_id)
    assert (job.status, job.attempts) == ("done", 1)  # never sent again
    record = store.get_session(session_id)
    assert (record.state, record.cost) == (State.SETTLED, price(TARIFF, 500))
    assert len(chain_events(net, "SessionSettled", session_id)) == 1
    store.close()


async def test_restart_after_an_unrecorded_send_finds_it_done_on_chain(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("UNREC")
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    driver = await funded_driver(net, 8)
    session_id = await _active_session(net, driver, station_id, 8, 100)
    # the previous run broadcast the settle but died before writing 'sent': the job is still pending
    await asyncio.to_thread(net.escrow(net.operator).settle, session_id, 900)
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)
    _queue_settle(store, _stopped_record(session_id, station_id, cp, driver, 8, 100, 900))
    await _work(worker, store)
    job = store.job(JobKind.SETTLE, session_id)
    assert (job.status, job.attempts) == ("done", 0)  # the revert (InvalidState: Settled) was recognised
    assert store.get_session(session_id).cost == price(TARIFF, 800)  # read back from the SessionSettled event
    assert len(chain_events(net, "SessionSettled", session_id)) == 1
    store.close()


async def test_a_dropped_transaction_is_sent_again(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("DROP")
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    driver = await funded_driver(net, 9)
    session_id = await _active_session(net, driver, station_id, 9, 100)
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)
    _queue_settle(store, _stopped_record(session_id, station_id, cp, driver, 9, 100, 400), "sent", "0x" + "ab" * 32)
    await _work(worker, store)
    job = store.job(JobKind.SETTLE, session_id)
    assert (job.status, job.attempts) == ("done", 2)
    [settled] = chain_events(net, "SessionSettled", session_id)
    assert settled.args["cost"] == price(TARIFF, 300)
    store.close()


async def test_a_reverting_batch_falls_back_to_single_settles(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("BATCH")
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    d1, d2, d3 = [await funded_driver(net, i) for i in (0, 1, 2)]
    good = [await _active_session(net, d, station_id, 20 + i, 100) for i, d in enumerate((d1, d2))]
    bad = await _active_session(net, d3, station_id, 30, 5000)
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)
    for i, (session_id, driver) in enumerate(zip(good, (d1, d2), strict=True)):
        _queue_settle(store, _stopped_record(session_id, station_id, cp, driver, 20 + i, 100, 700))
    # a settle below the start reading reverts (MeterBelowStart), and with it any batch holding it
    _queue_settle(store, _stopped_record(bad, station_id, cp, d3, 30, 5000, 4000))
    await _work(worker, store)
    assert [store.job(JobKind.SETTLE, s).status for s in good] == ["done", "done"]
    assert [store.get_session(s).state for s in good] == [State.SETTLED, State.SETTLED]
    failed = store.job(JobKind.SETTLE, bad)
    assert failed.status == "failed" and "MeterBelowStart" in failed.last_error
    assert store.get_session(bad).state is State.FAILED
    for session_id in good:
        [settled] = chain_events(net, "SessionSettled", session_id)
        assert settled.args["cost"] == price(TARIFF, 600)
    assert (await asyncio.to_thread(net.escrow().get_session, bad)).state is SessionState.ACTIVE
    store.close()


async def test_settles_with_an_end_time_go_out_as_one_settle_batch_at_apart_from_plain_ones(
    clean_chain, tmp_path, keyfile
):
    """OCPI settles (an end time from the CDR) batch as settleBatchAt, each end kept from its start on chain on;
    a plain settle in the same round goes out as settle, billed until its block."""
    net = clean_chain
    [cp] = cp_ids("AT")
    station_id = await asyncio.to_thread(net.add_station, cp, 1, TIMED_TARIFF)
    drivers = [await funded_driver(net, i) for i in (0, 1, 2)]
    t0 = latest_timestamp(net.w3) + 10
    ids = []
    for i, driver in enumerate(drivers):
        set_next_timestamp(net.w3, t0 + 100 * i)
        ids.append(await _active_session(net, driver, station_id, 40 + i, 0))
    net.time_travel(1_000)  # the CDRs come later
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)
    ends = [t0 + 700, t0 + 50, None]  # the second CDR's end lies before the start on chain: billed from there
    for i, (session_id, driver) in enumerate(zip(ids, drivers, strict=True)):
        _queue_settle(store, _stopped_record(session_id, station_id, cp, driver, 40 + i, 0, 1_000), ended_at=ends[i])
    await _work(worker, store)
    settled = [chain_events(net, "SessionSettled", s)[0] for s in ids]
    assert [e.args["endedAt"] for e in settled[:2]] == [t0 + 700, t0 + 100]
    assert [e.args["cost"] for e in settled[:2]] == [price(TIMED_TARIFF, 1_000, 700), price(TIMED_TARIFF, 1_000, 0)]
    assert settled[0].tx_hash == settled[1].tx_hash != settled[2].tx_hash  # one settleBatchAt; the plain one apart
    plain_block = (await asyncio.to_thread(net.w3.eth.get_block, settled[2].block_number))["timestamp"]
    assert settled[2].args["endedAt"] == plain_block
    store.close()


async def test_restart_resolves_sessions_that_read_closed_on_chain_from_their_events(clean_chain, tmp_path, keyfile):
    """While the daemon was down, its settle of one session went out unrecorded and the driver of another
    cancelled before its start was sent; both drivers have since opened their next session on the same
    lane, so both old sessions read Closed on chain. The restarted daemon's sends revert, and it tells
    from each session's events how it ended: the settle is done (cost from SessionSettled), the start
    failed (the session was cancelled)."""
    net = clean_chain
    ours, theirs = cp_ids("CLOSED", "ELSEWHERE")
    station_id = await asyncio.to_thread(net.add_station, ours, 2)
    elsewhere = await asyncio.to_thread(net.add_station, theirs, 2, TARIFF, net.operator2)
    settings = settings_for(net, tmp_path, keyfile, {ours: "pw"})
    d1, d2 = await funded_driver(net, 5), await funded_driver(net, 6)
    settled = await _active_session(net, d1, station_id, 41, 100)
    await asyncio.to_thread(net.escrow(net.operator).settle, settled, 700)
    cancelled = await open_session(net, d2, station_id, 2, DEPOSIT)
    await asyncio.to_thread(net.time_travel, net.deployment.start_timeout + 1)
    await asyncio.to_thread(net.escrow(d2).cancel, cancelled)
    following = [await open_session(net, d, elsewhere, 1 + i, DEPOSIT) for i, d in enumerate((d1, d2))]
    assert {lane_of(s) for s in (settled, cancelled, *following)} == {0}
    for session_id in (settled, cancelled):
        assert (await asyncio.to_thread(net.escrow().get_session, session_id)).state is SessionState.CLOSED

    store = Store(settings.database)  # the database as the previous run left it
    store.add_station(station_id, ours, 2)
    store.set_cursor(net.w3.eth.block_number)
    _queue_settle(store, _stopped_record(settled, station_id, ours, d1, 41, 100, 700))
    starting = _stopped_record(cancelled, station_id, ours, d2, 42, 0, 0)
    store.insert_session(dataclasses.replace(starting, connector=2, state=State.STARTING, meter_stop=None))
    store.enqueue(JobKind.START, cancelled, StartArgs(transaction_id=42, meter_start=0))
    store.close()

    daemon = Daemon(settings, PASSWORD)
    await daemon.start()
    try:
        store = daemon.store
        await until(lambda: not store.jobs("pending", "sent"), 20, "the restarted daemon's queue to drain")
        settle = store.job(JobKind.SETTLE, settled)
        assert (settle.status, settle.attempts) == ("done", 0)
        record = store.get_session(settled)
        assert (record.state, record.cost, record.refund) == (State.SETTLED, price(TARIFF, 600), DEPOSIT - record.cost)
        start = store.job(JobKind.START, cancelled)
        assert start.status == "failed" and "CANCELLED" in start.last_error
        assert store.get_session(cancelled).state is State.FAILED
        [failed] = daemon.health()["failed_sessions"]
        assert failed["session_id"] == hex_session_id(cancelled) and failed["id_tag"] == "EVN2"
        assert failed["connector"] == 2 and "CANCELLED" in failed["error"]
    finally:
        await daemon.stop(drain_timeout=5)
    assert len(chain_events(net, "SessionSettled", settled)) == 1
    assert chain_events(net, "SessionStarted", cancelled) == []
    for session_id in following:  # the drivers' new sessions were left alone
        assert (await asyncio.to_thread(net.escrow().get_session, session_id)).state is SessionState.REQUESTED


async def test_start_of_a_session_the_driver_cancelled_fails_loudly(clean_chain, tmp_path, keyfile, caplog):
    net = clean_chain
    [cp] = cp_ids("CANC")
    station_id = await asyncio.to_thread(net.add_station, cp, 1)
    driver = await funded_driver(net, 3)
    session_id = await open_session(net, driver, station_id, 1, DEPOSIT)
    await asyncio.to_thread(net.time_travel, net.deployment.start_timeout + 1)
    await asyncio.to_thread(net.escrow(driver).cancel, session_id)
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)
    record = dataclasses.replace(
        _stopped_record(session_id, station_id, cp, driver, 3, 0, 0), state=State.STARTING, meter_stop=None
    )
    store.insert_session(record)
    store.enqueue(JobKind.START, session_id, StartArgs(transaction_id=3, meter_start=0))
    await _work(worker, store)
    job = store.job(JobKind.START, session_id)
    assert job.status == "failed" and "InvalidState" in job.last_error and "CANCELLED" in job.last_error
    assert store.get_session(session_id).state is State.FAILED
    assert any("FAILED on chain" in r.message and r.levelname == "ERROR" for r in caplog.records)
    store.close()


async def test_piled_up_starts_go_out_as_one_start_batch_and_a_bad_one_falls_back_to_singles(
    clean_chain, tmp_path, keyfile, caplog
):
    net = clean_chain
    [cp] = cp_ids("BATCH")
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    driver = await funded_driver(net, 4)
    store, _, worker = _worker_parts(net, tmp_path, keyfile, cp)

    transaction_ids = iter(range(100, 200))

    def queue_starts(session_ids: list[int]) -> None:
        for n, session_id in enumerate(session_ids, start=1):
            transaction_id = next(transaction_ids)
            record = dataclasses.replace(
                _stopped_record(session_id, station_id, cp, driver, transaction_id, n, 0),
                state=State.STARTING,
                meter_stop=None,
            )
            store.insert_session(record)
            store.enqueue(JobKind.START, session_id, StartArgs(transaction_id=transaction_id, meter_start=n))

    batch = [await open_session(net, driver, station_id, 1, DEPOSIT) for _ in range(3)]
    queue_starts(batch)
    await _work(worker, store)
    jobs = [store.job(JobKind.START, s) for s in batch]
    assert {j.status for j in jobs} == {"done"} and len({j.tx_hash for j in jobs}) == 1  # one startBatch
    for session_id in batch:
        assert (await asyncio.to_thread(net.escrow().get_session, session_id)).state == SessionState.ACTIVE

    mixed = [await open_session(net, driver, station_id, 2, DEPOSIT) for _ in range(3)]
    await asyncio.to_thread(net.time_travel, net.deployment.start_timeout + 1)
    await asyncio.to_thread(net.escrow(driver).cancel, mixed[1])  # the driver gave up on this one
    queue_starts(mixed)
    await _work(worker, store)
    assert [store.job(JobKind.START, s).status for s in mixed] == ["done", "failed", "done"]
    assert any("start batch of 3 would revert" in r.message for r in caplog.records)
    store.close()
