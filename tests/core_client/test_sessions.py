"""Core Client domain logic without network: the session state machine, the budget rule and the store
(on both engines: a SQLite file and a real PostgreSQL). The configuration loader: test_config_checks.py;
the OCPP wire format: test_wire_input.py."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading

import psycopg
import pytest

from core_client.config import Settings
from core_client.sessions.jobs import CardOpenArgs, JobKind, SettleArgs, SignedSettleArgs, StartArgs
from core_client.sessions.machine import (
    FINISHED,
    HOLDS_CONNECTOR,
    TRANSITIONS,
    InvalidTransition,
    SessionRecord,
    State,
    budget_limit,
    cost_so_far,
    id_tag_for,
    job_retried,
    must_stop,
    tag_of_id_tag,
)
from core_client.sessions.service import SessionService
from core_client.storage.engines import open_database
from core_client.storage.migrations import SchemaVersionError, migrate, schema_version
from core_client.storage.schema import FIRST_VERSION, STEPS
from core_client.storage.store import SCHEMA_VERSION, StaleSession, Store, StoreVersionError
from ev_network.pricing import Tariff, price
from ev_network.session_ids import LANES, hex_session_id, make_session_id

TOKEN = 10**18
TARIFF = Tariff(price_per_kwh=35 * TOKEN // 100, session_fee=TOKEN // 2)
TIMED = Tariff(price_per_kwh=30 * TOKEN // 100, session_fee=TOKEN // 4, time_fee_per_hour=2 * TOKEN)
DRIVER = "0x" + "ab" * 20
SID = make_session_id(DRIVER, 0, 7)  # session 7 on lane 0 of DRIVER


def record(session_id: int = SID, **changes) -> SessionRecord:
    base = SessionRecord(
        session_id=session_id,
        station_id=3,
        charge_point_id="CP-1",
        connector=1,
        driver=DRIVER,
        deposit=10 * TOKEN,
        tariff=TARIFF,
        tariff_id=2,
        requested_block=40,
        requested_at=1000.0,
    )
    return dataclasses.replace(base, **changes)


# ------------------------------------------------------------ state machine


def test_happy_path_walks_every_state_to_settled():
    s = record()
    s = s.apply("remote_start_sent", remote_start_at=1.0)
    assert s.state is State.REMOTE_START_SENT
    s = s.apply("start_transaction", transaction_id=5, meter_start=1000)
    s = s.apply("start_mined")
    assert s.state is State.CHARGING
    s = s.apply("remote_stop_sent")
    assert s.state is State.STOPPING
    s = s.apply("stop_transaction", meter_stop=1500)
    assert s.state is State.STOPPED and s.energy_wh == 500
    s = s.apply("settle_mined", cost=1, refund=2)
    assert s.state is State.SETTLED and s.cost == 1


def test_stop_before_start_is_mined_keeps_stopped():
    s = record().apply("remote_start_sent").apply("start_transaction", meter_start=0)
    s = s.apply("stop_transaction", meter_stop=10)
    assert s.apply("start_mined").state is State.STOPPED


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (State.REQUESTED, "settle_mined"),
        (State.SETTLED, "stop_transaction"),
        (State.REJECTED, "start_transaction"),
        (State.REJECTING, "start_transaction"),
        (State.CHARGING, "reject_queued"),
        (State.STOPPED, "stop_transaction"),
    ],
)
def test_forbidden_transitions_raise(state, event):
    with pytest.raises(InvalidTransition, match=event):
        record(state=state).apply(event)


def test_transition_table_is_consistent():
    for (source, _), target in TRANSITIONS.items():
        assert isinstance(source, State) and isinstance(target, State)
    # nothing leaves a terminal state, but for the operator's retry of a failed job
    assert not [k for k in TRANSITIONS if k[0] in (State.SETTLED, State.REJECTED)]
    leaving_failed = {event: target for (source, event), target in TRANSITIONS.items() if source is State.FAILED}
    assert leaving_failed == {
        job_retried("start"): State.STARTING,
        job_retried("settle"): State.STOPPED,
        job_retried("reject"): State.REJECTING,
    }
    assert State.STOPPED in FINISHED and State.CHARGING in HOLDS_CONNECTOR


def test_id_tags_round_trip_and_reject_lookalikes():
    assert id_tag_for(12) == "EVN12"
    assert tag_of_id_tag("EVN12") == 12
    assert tag_of_id_tag("EVN" + "9" * 17) == 10**17 - 1  # the longest: 20 characters, OCPP's limit
    for tag in ("EVN", "EVN-1", "EVN012", "XEVN1", "evn1", None, "", "EVN1a", "EVN" + "9" * 18):
        assert tag_of_id_tag(tag) is None


def test_a_session_has_no_id_tag_before_the_store_numbers_it():
    with pytest.raises(ValueError, match=hex_session_id(SID)):
        _ = record().id_tag
    assert record(tag=5).id_tag == "EVN5"


# ------------------------------------------------------------------ budget


def test_budget_limit_is_exact_for_large_amounts():
    deposit = 2**95 + 12345
    assert budget_limit(deposit, 0.02) == deposit * 980_000 // 1_000_000
    assert budget_limit(deposit, 0) == deposit


def test_cost_so_far_matches_pricing():
    assert cost_so_far(TIMED, 1234, 1800) == price(TIMED, 1234, 1800)
    assert cost_so_far(TARIFF, -5, -1) == TARIFF.session_fee


def test_must_stop_at_margin():
    deposit = 2 * TOKEN  # 0.5 fee + 0.35/kWh: the limit 1.96 is reached at 4.1714 kWh
    assert not must_stop(TARIFF, deposit, 0.02, 4171, 0)
    assert must_stop(TARIFF, deposit, 0.02, 4172, 0)


def test_must_stop_one_interval_early():
    deposit = 2 * TOKEN
    # 3.5 kWh costs 1.725 < 1.96, but another 1.2 kWh interval would cost 2.145 > the deposit
    assert not must_stop(TARIFF, deposit, 0.02, 3500, 0, last_interval_wh=100)
    assert must_stop(TARIFF, deposit, 0.02, 3500, 0, last_interval_wh=1200)


def test_must_stop_counts_the_time_fee():
    deposit = 3 * TOKEN
    assert not must_stop(TIMED, deposit, 0, 0, 3600)  # 0.25 + 2
    assert must_stop(TIMED, deposit, 0, 0, 3600 + 1800)  # 0.25 + 3


# ------------------------------------------------------------------- store


@pytest.fixture
def store(db_location):
    s = Store(db_location)
    yield s
    s.close()


def test_session_round_trips_with_uint96_amounts(store):
    big = record(deposit=2**96 - 1, tariff=Tariff(2**95, 2**79, 2**79 - 1), cost=2**90, refund=2**90 + 1)
    assert store.insert_session(big) == 1
    assert store.insert_session(big) is None  # the same SessionRequested twice: one session
    big = dataclasses.replace(big, tag=1)
    assert store.get_session(SID) == big
    moved = store.save_session(big.apply("remote_start_sent", remote_start_at=5.5))
    assert moved.revision == 1 and store.get_session(SID) == moved
    assert store.counts_by_state() == {"remote_start_sent": 1}
    assert store.sessions_in({State.REMOTE_START_SENT}, "CP-1") == [moved]
    assert store.sessions_in({State.REMOTE_START_SENT}, "CP-2") == []


def test_a_job_takes_the_arguments_of_its_kind_and_a_session_has_one_settle(store):
    with pytest.raises(TypeError):
        store.enqueue(JobKind.SETTLE_SIGNED, SID, SettleArgs(meter_stop=5))
    signed = SignedSettleArgs(meter_stop=5, begin="OCMF|{}|{}", end="OCMF|{}|{}", meter_key="ab")
    assert store.enqueue(JobKind.SETTLE_SIGNED, SID, signed)
    assert not store.enqueue(JobKind.SETTLE, SID, SettleArgs(meter_stop=5))  # signed or not: one settle
    job = store.job(JobKind.SETTLE, SID)
    assert job.kind is JobKind.SETTLE_SIGNED and job.args == signed


def test_jobs_are_enqueued_exactly_once(store):
    assert store.enqueue(JobKind.START, SID, StartArgs(transaction_id=1, meter_start=10))
    assert not store.enqueue(JobKind.START, SID, StartArgs(transaction_id=2, meter_start=10))
    assert store.enqueue(JobKind.SETTLE, SID, SettleArgs(meter_stop=20))
    assert store.job(JobKind.START, make_session_id(DRIVER, 1, 7)) is None  # same seq, another lane
    job = store.job(JobKind.START, SID)
    assert job.session_id == SID
    assert job.args == StartArgs(transaction_id=1, meter_start=10) and job.status == "pending"
    store.update_job(job.id, status="sent", tx_hash="0xab", attempts=1)
    assert [j.kind for j in store.jobs("pending")] == ["settle"]
    assert store.job_counts() == {"pending": {"settle": 1}, "sent": {"start": 1}}
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        store.update_job(job.id, status="lost")


def test_jobs_of_no_status_named_are_jobs_of_any_status(store):
    assert store.jobs() == []
    store.enqueue(JobKind.START, SID, StartArgs(transaction_id=1, meter_start=10))
    store.enqueue(JobKind.SETTLE, SID, SettleArgs(meter_stop=20))
    store.update_job(store.job(JobKind.START, SID).id, status="done")
    assert [(j.kind, j.status) for j in store.jobs()] == [("start", "done"), ("settle", "pending")]
    assert [j.kind for j in store.jobs(kind=JobKind.SETTLE)] == ["settle"]


PAYER = "0x" + "Cd" * 20  # a mandate's payer, checksummed as a chain read gives it
CARD_OPEN = CardOpenArgs(
    mandate_id=4,
    token_ref="ab" * 32,
    payer=PAYER,
    station_id=3,
    connector=1,
    deposit=TOKEN,
    transaction_id=9,
    meter_start=0,
)


def test_a_card_open_awaits_its_session_requested_until_it_is_mined(store):
    store.enqueue(JobKind.OPEN_CARD, CARD_OPEN.transaction_id, CARD_OPEN)
    store.enqueue(JobKind.START, SID, StartArgs(transaction_id=1, meter_start=10))  # a wallet session's: awaits none
    assert store.awaits(PAYER.lower(), 3, 1)  # the event's address in any case
    assert not store.awaits(PAYER, 3, 2) and not store.awaits(PAYER, 4, 1) and not store.awaits(DRIVER, 3, 1)
    assert store.card_opens() == [CARD_OPEN]
    service = SessionService(Settings(), store)
    assert service.cards.opening(CARD_OPEN.transaction_id) and not service.cards.opening(1)
    store.update_job(store.job(JobKind.OPEN_CARD, CARD_OPEN.transaction_id).id, status="sent")
    assert store.awaits(PAYER, 3, 1) and service.cards.opening(CARD_OPEN.transaction_id)
    store.update_job(store.job(JobKind.OPEN_CARD, CARD_OPEN.transaction_id).id, status="done")
    assert not store.awaits(PAYER, 3, 1) and store.card_opens() == []
    assert not service.cards.opening(CARD_OPEN.transaction_id)


def test_a_card_open_queued_before_the_upgrade_still_awaits_its_session_requested(db_location):
    db = open_database(db_location)
    migrate(db, "store", [step for step in STEPS if step.version < 4])  # a store of before jobs.awaits (4)
    db.execute(
        "INSERT INTO jobs (kind, session_id, args, created_at, updated_at) VALUES ('start', ?, ?, 0, 0)",
        (hex_session_id(CARD_OPEN.transaction_id), json.dumps(dataclasses.asdict(CARD_OPEN))),
    )
    store = Store(db)
    try:
        assert store.awaits(PAYER, 3, 1) and store.card_opens() == [CARD_OPEN]
        assert not store.awaits(PAYER, 3, 2)
    finally:
        store.close()


def test_a_session_requested_reads_no_other_sessions_jobs(store, monkeypatch):
    """Deciding whether a SessionRequested is a card's open (recorded by the chain worker) or a new wallet
    session reads a few rows, however many jobs are on their way: it was every open job's, decoded, per
    event (quadratic over a busy run)."""
    store.add_station(3, "CP-1", 2)
    service = SessionService(Settings(), store)
    for seq in range(1, 51):  # other sessions' starts on their way, and a card's open at another connector
        store.enqueue(JobKind.START, make_session_id(DRIVER, 1, seq), StartArgs(transaction_id=seq, meter_start=0))
    store.enqueue(JobKind.OPEN_CARD, CARD_OPEN.transaction_id, dataclasses.replace(CARD_OPEN, connector=2))
    read: list[int] = []
    run = store.db._run
    monkeypatch.setattr(store.db, "_run", lambda *a, **k: read.append(len(rows := run(*a, **k))) or rows)
    args = {"sessionId": SID, "driver": PAYER, "stationId": 3, "connector": 1, "deposit": TOKEN, "tariffId": 2}
    assert service.on_session_requested(args, 40, TARIFF)  # a wallet session of the card's payer: recorded
    assert sum(read) <= 5, read
    assert store.get_session(SID).state is State.REQUESTED
    card = {**args, "sessionId": make_session_id(PAYER, 0, 1), "connector": 2}
    assert not service.on_session_requested(card, 41, TARIFF)  # the card's open: left to the worker
    assert store.get_session(card["sessionId"]) is None


def test_transaction_ids_count_up_and_survive_reopen(db_location):
    path = db_location
    s = Store(path)
    assert s.new_transaction("CP-1", 1, "EVN1", SID, 100) == 1
    assert s.new_transaction("CP-1", 2, "OTHER", None, 200) == 2
    s.finish_transaction(2, 250, "Local")
    s.set_cursor(41)
    s.close()
    s = Store(path)
    assert s.new_transaction("CP-2", 1, None, None, 0) == 3
    tx = s.get_transaction(2)
    assert (tx.charge_point_id, tx.session_id, tx.meter_stop, tx.stop_reason) == ("CP-1", None, 250, "Local")
    assert s.get_transaction(1).session_id == SID
    assert s.cursor() == 41
    s.close()


def test_transaction_block_rolls_back_everything(store):
    store.set_cursor(10)
    with pytest.raises(RuntimeError), store.transaction():
        store.insert_session(record())
        store.set_cursor(11)
        raise RuntimeError("crash in the middle")
    assert store.cursor() == 10 and store.get_session(SID) is None


def test_256_bit_session_ids_round_trip_as_hex_text(store):
    """The largest id the escrow makes (driver 0xff..ff, lane 255, seq 65535) does not fit SQLite's
    64-bit integers: it is stored as 0x and 64 hex digits, and comes back as the same int."""
    top = make_session_id("0x" + "ff" * 20, LANES - 1, 2**16 - 1)
    assert top >= 2**255
    store.insert_session(record(top))
    store.enqueue(JobKind.SETTLE, top, SettleArgs(meter_stop=1))
    store.new_transaction("CP-1", 1, "EVN1", top, 0)
    assert store.get_session(top).session_id == top
    assert store.job(JobKind.SETTLE, top).session_id == top and store.get_transaction(1).session_id == top
    stored = store.db.execute("SELECT session_id FROM sessions").fetchone()[0]
    assert stored == hex_session_id(top) and len(stored) == 66
    assert store.db.execute("SELECT session_id FROM jobs").fetchone()[0] == stored


def test_each_session_gets_its_own_short_tag_and_id_tag(store):
    # two sessions of one driver with the same sequence number on different lanes, and one of another
    # driver: ids that share their low digits still get different tags
    ids = [make_session_id(DRIVER, 0, 1), make_session_id(DRIVER, 1, 1), make_session_id("0x" + "cd" * 20, 0, 1)]
    tags = [store.insert_session(record(i)) for i in ids]
    assert tags == [1, 2, 3]
    id_tags = [store.get_session(i).id_tag for i in ids]
    assert id_tags == ["EVN1", "EVN2", "EVN3"] and all(len(t) <= 20 for t in id_tags)
    for session_id, id_tag in zip(ids, id_tags, strict=True):
        assert store.session_by_tag(tag_of_id_tag(id_tag)).session_id == session_id
    assert store.session_by_tag(4) is None  # EVN4 names no session: refused by the charge point handlers
    assert [s.session_id for s in store.sessions_in({State.REQUESTED})] == ids  # in the order requested


def test_tags_are_never_reused(db_location):
    path = db_location
    s = Store(path)
    assert s.insert_session(record(make_session_id(DRIVER, 0, 1))) == 1
    assert s.insert_session(record(make_session_id(DRIVER, 0, 2))) == 2
    s.db.execute("DELETE FROM sessions")  # even after rows are gone (AUTOINCREMENT) ...
    s.close()
    s = Store(path)  # ... and across restarts
    assert s.insert_session(record(make_session_id(DRIVER, 0, 3))) == 3
    s.close()


def _old_store(path) -> None:
    """A store file as the Core Client wrote it before 256-bit session ids (user_version 0)."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE sessions (session_id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
    db.execute("INSERT INTO sessions VALUES (12, 'charging')")
    db.commit()
    db.close()


def test_an_old_store_file_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "old.sqlite"
    _old_store(path)
    with pytest.raises(StoreVersionError, match="store version 0, from before 256-bit session ids") as refused:
        Store(path)
    assert "point `database` in the config at a new file" in str(refused.value)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert db.execute("SELECT * FROM sessions").fetchall() == [(12, "charging")]
    db.close()


def test_a_new_sqlite_file_is_stamped_for_older_readers(tmp_path):
    path = tmp_path / "new.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == FIRST_VERSION  # what readers before schema_versions read
    db.close()


def test_a_store_of_a_newer_version_is_refused_and_left_as_it_is(db_location):
    store = Store(db_location)
    store.set_cursor(7)
    store.db.execute("UPDATE schema_versions SET version = version + 1 WHERE part = 'store'")
    store.close()
    with pytest.raises(SchemaVersionError, match=f"store at version {SCHEMA_VERSION + 1}, written by a newer Core"):
        Store(db_location)
    db = open_database(db_location)
    assert schema_version(db, "store") == SCHEMA_VERSION + 1
    assert db.execute("SELECT value FROM meta WHERE key = 'event_cursor'")[0][0] == "7"
    db.close()


def test_instances_sharing_a_database_never_take_the_same_transaction_id_or_tag(pg_url):
    """Two stores on one PostgreSQL database (two instances), each from its own thread."""
    stores = [Store(pg_url), Store(pg_url)]
    taken: dict[str, list[int]] = {"ids": [], "tags": []}
    start = threading.Barrier(2)

    def instance(n: int) -> None:
        start.wait(10)
        for i in range(50):
            taken["ids"].append(stores[n].new_transaction("CP-1", 1, None, None, 0))
            taken["tags"].append(stores[n].insert_session(record(make_session_id(DRIVER, n, i + 1))))

    threads = [threading.Thread(target=instance, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for store in stores:
        store.close()
    assert sorted(taken["ids"]) == list(range(1, 101))
    assert sorted(taken["tags"]) == list(range(1, 101))


def test_stations_and_connector_status(store):
    store.add_station(3, "CP-1", 2)
    store.add_station(3, "CP-1", 4)
    assert store.stations() == {3: ("CP-1", 4)}
    assert store.station_of("CP-1") == (3, 4) and store.station_of("CP-9") is None
    assert store.station(3) == ("CP-1", 4) and store.station(4) is None
    store.set_connector_status("CP-1", 1, "Charging", "NoError")
    store.set_connector_status("CP-1", 1, "Available", "NoError")
    assert store.connector_status("CP-1", 1) == "Available"
    assert store.connector_status("CP-1", 2) is None


def test_of_two_new_sessions_on_one_connector_the_first_requested_gets_it(store):
    """Session ids are ordered by driver address, not by arrival: the store's tags decide."""
    first = record(make_session_id("0x" + "ee" * 20, 0, 1))  # requested first, the larger id
    second = record(make_session_id("0x" + "11" * 20, 0, 1))
    assert first.session_id > second.session_id
    store.insert_session(first)
    store.insert_session(second)
    service = SessionService(Settings(), store)
    first, second = store.get_session(first.session_id), store.get_session(second.session_id)
    assert not service.connector_busy(first)
    assert service.connector_busy(second)


def test_a_session_written_since_it_was_read_is_not_written_over(store):
    store.insert_session(record(meter_start=0, meter_last=100, meter_at=10.0))
    first, second = store.get_session(SID), store.get_session(SID)
    store.save_session(first.update(stop_wanted="driver"))
    with pytest.raises(StaleSession):
        store.save_session(second.apply("remote_start_sent"))
    s = store.get_session(SID)
    assert (s.state, s.stop_wanted, s.revision) == (State.REQUESTED, "driver", 1)
    store.save_meters([(SID, 300, 12.0)])  # a reading is no revision ...
    store.save_meters([(SID, 200, 11.0)])  # ... and an older one does not replace it
    assert store.save_session(s.update(meter_last=150, meter_at=10.5)).revision == 2  # nor does a decision's
    assert (store.get_session(SID).meter_last, store.get_session(SID).stop_wanted) == (300, "driver")


def test_pending_settles_come_with_the_status_of_their_start(store):
    other = make_session_id(DRIVER, 1, 7)
    for session_id in (SID, other):
        store.enqueue(JobKind.SETTLE, session_id, SettleArgs(meter_stop=5))
    store.enqueue(JobKind.START, SID, StartArgs(transaction_id=1, meter_start=1))
    store.update_job(store.job(JobKind.START, SID).id, status="done")
    assert [(j.session_id, start) for j, start in store.pending_settles()] == [(SID, "done"), (other, None)]


def test_a_checkpoint_in_another_thread_keeps_every_commit(tmp_path):
    path = tmp_path / "cp.sqlite"
    store = Store(path)
    for i in range(200):
        store.set_meta(f"k{i}", "v" * 500)
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 100_000  # no automatic checkpoint on the daemon's connection
    worker = threading.Thread(target=store.checkpoint)
    worker.start()
    worker.join()
    store.set_meta("after", "1")
    store.close()
    reopened = Store(path)
    assert reopened.meta("k199") == "v" * 500 and reopened.meta("after") == "1"
    reopened.close()
