"""The Core Client's persistent state: sessions, OCPP transactions, chain jobs, the event cursor, our
stations and connector statuses; in a SQLite file (the default) or a PostgreSQL database
(``database = "postgresql://..."``), through :mod:`core_client.storage.database`.

The daemon uses it from the store's thread (:mod:`core_client.storage.serial`), never on the event
loop; short transactions. Amounts, tariff prices and session ids are TEXT: a uint96 or a 256-bit
session id fits neither engine's 64-bit integers. Session ids are stored as 0x and 64 hex digits. Each session also gets a small ``tag`` (its row number), which names it in OCPP idTags.
``with store.transaction():`` groups several writes atomically (the event watcher commits state changes
together with its cursor). Counters shared by several instances (transaction ids, tags) are taken in
one statement each, so two instances on one PostgreSQL never hand out the same number.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from core_client.sessions.jobs import ARGS, OPEN, CardOpenArgs, Job, JobArgs, JobKind, JobStatus, job_args, stored_kind
from core_client.sessions.machine import SessionRecord, State
from core_client.storage.database import Conflict, Database
from core_client.storage.engines import open_database
from core_client.storage.schema import SCHEMA_VERSION, StoreVersionError, migrate_store
from core_client.storage.serial import StoreThread

__all__ = ["SCHEMA_VERSION", "StaleSession", "Store", "StoreVersionError", "Transaction"]
from ev_network.pricing import Tariff
from ev_network.session_ids import hex_session_id

_AMOUNTS = ("deposit", "cost", "refund")
_READING = ("meter_last", "meter_at")
# the latest reading wins: a write carries its reading and its time twice (see _newer_reading)
_NEWER_READING = (
    "meter_last = CASE WHEN meter_at IS NULL OR meter_at <= ? THEN ? ELSE meter_last END,"
    " meter_at = CASE WHEN meter_at IS NULL OR meter_at <= ? THEN ? ELSE meter_at END"
)


class StaleSession(Conflict):
    """A session written by another instance since it was read: the input is decided again on fresh state."""

    def __init__(self, record: SessionRecord) -> None:
        super().__init__(
            f"session {hex_session_id(record.session_id)} was written by another instance since it was read"
            f" (revision {record.revision})"
        )
        self.session_id = record.session_id


@dataclass(frozen=True)
class Transaction:
    """An OCPP transaction id handed out to a charge point (with or without a session)."""

    transaction_id: int
    charge_point_id: str
    connector: int
    id_tag: str | None
    session_id: int | None
    meter_start: int
    started_at: float
    meter_stop: int | None
    stop_reason: str | None
    stopped_at: float | None
    ended_at: int | None = None  # the end the settle bills the time until (an OCPI CDR's), if not its block's


class Store:
    """The Core Client's persistent state, on either engine (see the module docstring)."""

    def __init__(self, location: str | Path | Database) -> None:
        self.db = location if isinstance(location, Database) else open_database(location)
        self.location = self.db.location
        try:
            migrate_store(self.db)
        except BaseException:
            self.db.close()
            raise
        self.thread = StoreThread(self.db)  # where the daemon runs its store work (never on the event loop)

    def close(self) -> None:
        self.thread.close()
        self.db.close()

    def transaction(self) -> AbstractContextManager[Database]:
        """An atomic group of writes; nested uses join the outer transaction."""
        return self.db.transaction()

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current transaction is committed (never if it is rolled back)."""
        self.db.on_commit(callback)

    # ------------------------------------------------------------- sessions

    def insert_session(self, record: SessionRecord) -> int | None:
        """Store a new session; returns its tag (the number in its idTag ``EVN<tag>``), or None (and no
        change) if it is already known."""
        row = _session_row(record)
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        added = self.db.execute(
            f"INSERT INTO sessions ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING RETURNING tag", list(row.values())
        )
        return added[0][0] if added else None

    def save_session(self, record: SessionRecord) -> SessionRecord:
        """Write ``record`` over its stored session, unless the store has written that session since
        ``record`` was read (another instance did: :class:`StaleSession`, nothing written); the record as
        stored, at its next revision. The meter reading is written only if it is the newer one: readings
        (:meth:`save_meters`) do not count as a revision, so that they never refuse a decision."""
        row = _session_row(record)
        kept = {"session_id", "revision", *_READING}
        sets = ", ".join(f"{k} = ?" for k in row if k not in kept)
        values = [v for k, v in row.items() if k not in kept]
        changed = self.db.execute(
            f"UPDATE sessions SET {sets}, {_NEWER_READING}, revision = revision + 1"
            " WHERE session_id = ? AND revision = ?",
            [*values, *_newer_reading(record.meter_last, record.meter_at), _key(record.session_id), record.revision],
        )
        if changed.rowcount != 1:
            raise StaleSession(record)
        return replace(record, revision=record.revision + 1)

    def save_meters(self, readings: list[tuple[int, int, float]]) -> None:
        """Write many live meter readings (session id, Wh, time) in one transaction, each only over an
        older one (not a revision: see :meth:`save_session`)."""
        with self.transaction() as db:
            db.executemany(
                f"UPDATE sessions SET {_NEWER_READING} WHERE session_id = ?",
                [(*_newer_reading(wh, at), _key(session_id)) for session_id, wh, at in readings],
            )

    def get_session(self, session_id: int) -> SessionRecord | None:
        row = self.db.execute("SELECT * FROM sessions WHERE session_id = ?", (_key(session_id),)).fetchone()
        return _session_from(row) if row else None

    def session_by_tag(self, tag: int) -> SessionRecord | None:
        row = self.db.execute("SELECT * FROM sessions WHERE tag = ?", (tag,)).fetchone()
        return _session_from(row) if row else None

    def session_by_transaction(self, transaction_id: int) -> SessionRecord | None:
        row = self.db.execute("SELECT * FROM sessions WHERE transaction_id = ?", (transaction_id,)).fetchone()
        return _session_from(row) if row else None

    def sessions_in(
        self, states: frozenset[State] | set[State], charge_point_id: str | None = None, stop_wanted: bool = False
    ) -> list[SessionRecord]:
        """Sessions in any of ``states`` (optionally of one charge point, optionally only those whose
        stop is wanted), oldest first."""
        marks = ", ".join("?" for _ in states)
        query = f"SELECT * FROM sessions WHERE state IN ({marks})"
        if stop_wanted:
            query += " AND stop_wanted IS NOT NULL"
        params: list[Any] = [s.value for s in states]
        if charge_point_id is not None:
            query += " AND charge_point_id = ?"
            params.append(charge_point_id)
        return [_session_from(r) for r in self.db.execute(query + " ORDER BY tag", params)]

    def counts_by_state(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT state, COUNT(*) FROM sessions GROUP BY state").fetchall())

    # --------------------------------------------------------- transactions

    def new_transaction(
        self,
        charge_point_id: str,
        connector: int,
        id_tag: str | None,
        session_id: int | None,
        meter_start: int,
        transaction_id: int | None = None,
    ) -> int:
        """Hand out the next OCPP transaction id (1, 2, ...; fits the contract's uint32), or take
        ``transaction_id`` as decided elsewhere (proxy mode: the CSMS's id, or an offline one)."""
        with self.transaction() as db:
            tx_id = transaction_id
            if tx_id is None:  # one statement: instances sharing the database never take the same id
                taken = db.execute(
                    "INSERT INTO meta (key, value) VALUES ('next_transaction_id', '2') ON CONFLICT (key)"
                    " DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT) RETURNING value"
                )
                tx_id = int(taken[0][0]) - 1
            db.execute(
                "INSERT INTO transactions (transaction_id, charge_point_id, connector, id_tag, session_id, meter_start,"
                " started_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (transaction_id) DO UPDATE SET"
                " charge_point_id = excluded.charge_point_id, connector = excluded.connector, id_tag = excluded.id_tag,"
                " session_id = excluded.session_id, meter_start = excluded.meter_start, started_at = excluded.started_at,"
                " meter_stop = NULL, stop_reason = NULL, stopped_at = NULL, ended_at = NULL",
                (tx_id, charge_point_id, connector, id_tag, _key(session_id), meter_start, time.time()),
            )
            return tx_id

    def link_transaction(self, transaction_id: int, session_id: int) -> None:
        """The transaction is the session's (a card's: its session exists once its open is mined)."""
        self.db.execute(
            "UPDATE transactions SET session_id = ? WHERE transaction_id = ?", (_key(session_id), transaction_id)
        )

    def get_transaction(self, transaction_id: int) -> Transaction | None:
        row = self.db.execute("SELECT * FROM transactions WHERE transaction_id = ?", (transaction_id,)).fetchone()
        return Transaction(**(dict(row) | {"session_id": _id(row["session_id"])})) if row else None

    def finish_transaction(
        self, transaction_id: int, meter_stop: int, reason: str | None, ended_at: int | None = None
    ) -> None:
        """The transaction stopped at ``meter_stop`` (``ended_at``: the end its settle bills the time until)."""
        self.db.execute(
            "UPDATE transactions SET meter_stop = ?, stop_reason = ?, stopped_at = ?, ended_at = ?"
            " WHERE transaction_id = ?",
            (meter_stop, reason, time.time(), ended_at, transaction_id),
        )

    # ----------------------------------------------------------------- jobs

    def enqueue(self, kind: JobKind, session_id: int, args: JobArgs) -> bool:
        """Queue a chain job; False if this (kind, session) was queued before: each runs exactly once (a
        session has one settle, signed or not: :attr:`JobKind.queued_as`)."""
        if not isinstance(args, ARGS[kind]):
            raise TypeError(f"a {kind} job takes {ARGS[kind].__name__}, not {type(args).__name__}")
        now = time.time()
        awaits = _awaits(args.payer, args.station_id, args.connector) if isinstance(args, CardOpenArgs) else None
        added = self.db.execute(
            "INSERT INTO jobs (kind, session_id, args, created_at, updated_at, awaits) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (kind.queued_as.value, _key(session_id), json.dumps(asdict(args)), now, now, awaits),
        )
        return added.rowcount == 1

    def jobs(self, *statuses: JobStatus | str, kind: JobKind | None = None, limit: int = -1) -> list[Job]:
        """Jobs in any of ``statuses`` (none given: in any status; optionally of one kind), oldest first, at
        most ``limit`` (-1: all)."""
        query, params = _jobs_query(statuses, kind)
        query = f"SELECT * {query} ORDER BY id"
        if limit >= 0:
            query, params = query + " LIMIT ?", [*params, limit]
        return [_job_from(r) for r in self.db.execute(query, params)]

    def mined_after(self, kind: JobKind, block: int) -> list[Job]:
        """Done jobs of ``kind`` mined in a block after ``block``, oldest first."""
        query, params = _jobs_query((JobStatus.DONE,), kind)
        rows = self.db.execute(f"SELECT * {query} AND block > ? ORDER BY id", [*params, block])
        return [_job_from(r) for r in rows]

    def card_opens(self) -> list[CardOpenArgs]:
        """The arguments of the card opens not mined yet (read through their own index, not every open job)."""
        query, params = _jobs_query(OPEN, None)
        rows = self.db.execute(f"SELECT * {query} AND awaits IS NOT NULL ORDER BY id", params)
        return [a for r in rows if isinstance(a := _job_from(r).args, CardOpenArgs)]

    def awaits(self, payer: str, station_id: int, connector: int) -> bool:
        """Whether a card's open not mined yet will emit this SessionRequested (its mining records the
        session, not the event watcher); one index lookup."""
        query, params = _jobs_query(OPEN, None)
        found = self.db.execute(
            f"SELECT EXISTS (SELECT 1 {query} AND awaits = ?)", [*params, _awaits(payer, station_id, connector)]
        )
        return bool(found.fetchone()[0])

    def has_jobs(self, *statuses: JobStatus | str) -> bool:
        """Whether any job is in one of ``statuses`` (without reading them all)."""
        query, params = _jobs_query(statuses, None)
        return bool(self.db.execute(f"SELECT EXISTS (SELECT 1 {query})", params).fetchone()[0])

    def pending_settles(self) -> list[tuple[Job, JobStatus | None]]:
        """Pending settles, each with the status of its session's start job (None: no start queued)."""
        rows = self.db.execute(
            "SELECT s.*, st.status AS start_status FROM jobs s LEFT JOIN jobs st"
            " ON st.session_id = s.session_id AND st.kind = 'start'"
            " WHERE s.kind = 'settle' AND s.status = 'pending' ORDER BY s.id"
        )
        return [(_job_from(r), JobStatus(r["start_status"]) if r["start_status"] else None) for r in rows]

    def checkpoint(self) -> None:
        """The database's housekeeping that waits for the disk (SQLite: copy the write-ahead log into the
        file); run it in a worker thread, never on the event loop."""
        self.db.checkpoint()

    def job(self, kind: JobKind, session_id: int) -> Job | None:
        row = self.db.execute(
            "SELECT * FROM jobs WHERE kind = ? AND session_id = ?", (kind.queued_as.value, _key(session_id))
        ).fetchone()
        return _job_from(row) if row else None

    def move_job(self, job_id: int, session_id: int) -> None:
        """File a job under ``session_id`` (a card's open, queued under its transaction id, once mined)."""
        self.db.execute("UPDATE jobs SET session_id = ? WHERE id = ?", (_key(session_id), job_id))

    def update_job(self, job_id: int, **changes: Any) -> None:
        """Set job fields (status, tx_hash, attempts, last_error, block)."""
        if isinstance(changes.get("status"), JobStatus):
            changes["status"] = changes["status"].value
        sets = ", ".join(f"{k} = ?" for k in changes)
        self.db.execute(
            f"UPDATE jobs SET {sets}, updated_at = ? WHERE id = ?", [*changes.values(), time.time(), job_id]
        )

    def job_counts(self) -> dict[str, dict[str, int]]:
        """{status: {kind: count}}."""
        counts: dict[str, dict[str, int]] = {}
        for status, kind, n in self.db.execute("SELECT status, kind, COUNT(*) FROM jobs GROUP BY status, kind"):
            counts.setdefault(status, {})[kind] = n
        return counts

    # ----------------------------------------------- cursor, stations, meta

    def cursor(self) -> int | None:
        """The last block whose events are fully processed, or None before the first run."""
        value = self.meta("event_cursor")
        return int(value) if value is not None else None

    def set_cursor(self, block: int) -> None:
        self.set_meta("event_cursor", str(block))

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def add_station(self, station_id: int, charge_point_id: str, connectors: int) -> None:
        self.db.execute(
            "INSERT INTO stations (station_id, charge_point_id, connectors) VALUES (?, ?, ?) "
            "ON CONFLICT(station_id) DO UPDATE SET connectors = excluded.connectors",
            (station_id, charge_point_id, connectors),
        )

    def stations(self) -> dict[int, tuple[str, int]]:
        """Our stations: {station_id: (charge_point_id, connectors)}."""
        return {r[0]: (r[1], r[2]) for r in self.db.execute("SELECT * FROM stations ORDER BY station_id")}

    def station(self, station_id: int) -> tuple[str, int] | None:
        """(charge point id, connectors) of our station ``station_id``, or None."""
        row = self.db.execute(
            "SELECT charge_point_id, connectors FROM stations WHERE station_id = ?", (station_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def station_of(self, charge_point_id: str) -> tuple[int, int] | None:
        """(station id, connectors) of our station with this charge point id, or None."""
        row = self.db.execute(
            "SELECT station_id, connectors FROM stations WHERE charge_point_id = ?", (charge_point_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def save_meter_record(self, session_id: int, context: str, record: str) -> None:
        """Keep a session's signed meter record (OCMF text) for ``context`` (Transaction.Begin / End)."""
        self.db.execute(
            "INSERT INTO meter_records VALUES (?, ?, ?) ON CONFLICT (session_id, context)"
            " DO UPDATE SET record = excluded.record",
            (_key(session_id), context, record),
        )

    def meter_records(self, session_id: int) -> dict[str, str]:
        """{context: OCMF text} of the session's signed meter records."""
        rows = self.db.execute("SELECT context, record FROM meter_records WHERE session_id = ?", (_key(session_id),))
        return {r[0]: r[1] for r in rows}

    def set_connector_status(self, charge_point_id: str, connector: int, status: str, error_code: str | None) -> None:
        self.set_connector_statuses([(charge_point_id, connector, status, error_code)])

    def set_connector_statuses(self, statuses: list[tuple[str, int, str, str | None]]) -> None:
        """Write many connector statuses (charge point id, connector, status, error code) at once (on
        PostgreSQL in one round trip, not one per status)."""
        now = time.time()
        self.db.executemany(
            "INSERT INTO connectors VALUES (?, ?, ?, ?, ?) ON CONFLICT(charge_point_id, connector) "
            "DO UPDATE SET status = excluded.status, error_code = excluded.error_code, updated_at = excluded.updated_at",
            [(cp_id, connector, status, error_code, now) for cp_id, connector, status, error_code in statuses],
        )

    def connector_status(self, charge_point_id: str, connector: int) -> str | None:
        row = self.db.execute(
            "SELECT status FROM connectors WHERE charge_point_id = ? AND connector = ?", (charge_point_id, connector)
        ).fetchone()
        return row[0] if row else None


def _jobs_query(statuses: tuple[JobStatus | str, ...], kind: JobKind | None) -> tuple[str, list[Any]]:
    """The FROM and WHERE of jobs in any of ``statuses`` (none: any status), optionally of one kind."""
    wanted = statuses or tuple(JobStatus)
    query = f"FROM jobs WHERE status IN ({', '.join('?' for _ in wanted)})"
    params: list[Any] = [JobStatus(s).value for s in wanted]
    if kind is not None:
        query += " AND kind = ?"
        params.append(kind.queued_as.value)
    return query, params


def _awaits(payer: str, station_id: int, connector: int) -> str:
    """What a card's open keeps in ``jobs.awaits``: the SessionRequested its mining emits (schema step 4)."""
    return f"{payer.lower()}/{station_id}/{connector}"


def _key(session_id: int | None) -> str | None:
    return None if session_id is None else hex_session_id(session_id)


def _id(key: str | None) -> int | None:
    return None if key is None else int(key, 16)


def _newer_reading(wh: int | None, at: float | None) -> tuple[Any, ...]:
    """The parameters of _NEWER_READING: a reading of no time is newer only than one of no time."""
    compared = -1.0 if at is None else at
    return (compared, wh, compared, at)


def _session_row(record: SessionRecord) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name == "tag":
            continue  # the store assigns it
        if f.name == "session_id":
            row[f.name] = _key(value)
        elif f.name == "tariff":
            row["price_per_kwh"] = str(value.price_per_kwh)
            row["session_fee"] = str(value.session_fee)
            row["time_fee_per_hour"] = str(value.time_fee_per_hour)
        elif f.name == "state":
            row["state"] = value.value
        elif f.name in _AMOUNTS:
            row[f.name] = None if value is None else str(value)
        else:
            row[f.name] = value
    return row


def _session_from(row: Any) -> SessionRecord:
    data = dict(row)
    tariff = Tariff(int(data.pop("price_per_kwh")), int(data.pop("session_fee")), int(data.pop("time_fee_per_hour")))
    for name in _AMOUNTS:
        data[name] = None if data[name] is None else int(data[name])
    data["state"] = State(data["state"])
    data["session_id"] = _id(data["session_id"])
    del data["remote_stop_sent"]  # a column of older versions, unused (the STOPPING state says it)
    return SessionRecord(tariff=tariff, **data)


def _job_from(row: Any) -> Job:
    data = dict(row)
    args = json.loads(data["args"])
    kind = stored_kind(JobKind(data["kind"]), args)  # a signed settle, a card's open: see JobKind.queued_as
    return Job(
        id=data["id"],
        kind=kind,
        session_id=_id(data["session_id"]),
        args=job_args(kind, args),
        status=JobStatus(data["status"]),
        tx_hash=data["tx_hash"],
        attempts=data["attempts"],
        last_error=data["last_error"],
        block=data["block"],
    )
