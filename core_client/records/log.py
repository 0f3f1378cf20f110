"""The Core Client's transaction log: every OCPP transaction it sees (paid on chain or not) becomes a
record in an append-only, hash-linked log (in the Core Client's database: SQLite or PostgreSQL), and the
log's Merkle roots are anchored on chain.

Narrow API for the session flow (the daemon owns one :class:`TransactionLog`):

- ``record_start(...)`` when a StartTransaction is answered (the transaction id is known),
- ``record_stop(...)`` when a StopTransaction arrives: the record is complete and appended,
- ``await anchor_due(sender)`` now and then (e.g. every few seconds from the chain worker's loop): when
  ``anchor_every`` records wait or the oldest waited ``anchor_interval_s``, it anchors them all in one
  transaction through the GIVEN sender (the daemon's, so nonces stay shared).

Anchored ranges come from the chain (``RecordAnchor.nextIndex``/``anchorOf`` of the operator): after a
crash between sending an anchor and storing it, the next sync finds it there, and the contract refuses a
second anchor over the same range. The log rows are protected by triggers (no UPDATE, no DELETE). Appends
take turns (a lock named after the log), so instances sharing one PostgreSQL keep one chain of records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from core_client.ocpp.wire import signed_meter_data
from core_client.records.schema import ANCHOR_FIELDS, STEPS
from core_client.storage.database import Database, describe
from core_client.storage.engines import open_database
from core_client.storage.migrations import migrate
from ev_network.errors import ChainUnavailable, ContractRevert, EVNetworkError, TransactionFailed
from ev_network.merkle import MerkleTree
from ev_network.records import (
    ZERO,
    AnchorRef,
    Record,
    RecordAnchor,
    RecordError,
    RecordExport,
    id_tag_hash,
    leaf_hash,
    new_salt,
    unix_seconds,
)
from ev_network.records import Anchor as ChainAnchor
from ev_network.tx import TxSender

__all__ = ["LogEntry", "LogMismatch", "TransactionLog", "signed_meter_data"]

log = logging.getLogger("core_client.records")


class LogMismatch(RecordError):
    """The chain holds an anchor whose root this log does not reproduce (a different or altered log)."""


@dataclass(frozen=True)
class LogEntry:
    index: int
    record: Record
    previous: str
    leaf: str
    appended_at: float


def _start_of(record: Record) -> tuple:
    return record.charge_point_id, record.connector, record.start_time, record.meter_start


class TransactionLog:
    """The append-only, hash-linked log of transaction records and its anchors (tables ``record_*``;
    they can live in the Core Client's own database file)."""

    def __init__(
        self,
        location: str | Path | Database,
        anchors: RecordAnchor,
        *,
        anchor_every: int = 1000,
        anchor_interval_s: float = 600.0,
    ) -> None:
        self._own_db = not isinstance(location, Database)  # a database handed in is closed by its owner
        self.db = location if isinstance(location, Database) else open_database(location)
        self.location = self.db.location
        self.anchors = anchors
        self.anchor_every = anchor_every
        self.anchor_interval_s = anchor_interval_s
        migrate(self.db, "records", STEPS)
        self._anchoring = asyncio.Lock()

    def close(self) -> None:
        if self._own_db:
            self.db.close()

    # -- the session flow
    def record_start(
        self,
        charge_point_id: str,
        connector: int,
        transaction_id: int,
        id_tag: str,
        meter_start: int,
        timestamp: datetime | str | int,
    ) -> None:
        """Remember a started transaction (its idTag only as a salted hash). A repeat of the same start is
        ignored; another start under an id still open replaces it (the earlier one never stopped).
        Raises RecordError for values a record cannot hold."""
        salt = new_salt()
        opened = Record.checked(
            charge_point_id=charge_point_id,
            connector=connector,
            transaction_id=transaction_id,
            id_tag_salt=salt,
            id_tag_hash=id_tag_hash(salt, id_tag),
            start_time=unix_seconds(timestamp),
            stop_time=0,
            meter_start=meter_start,
            meter_stop=0,
        )
        with self.db.transaction() as db:
            known = self._open(transaction_id)
            if known is not None and _start_of(known) == _start_of(opened):
                return
            if known is not None:
                log.warning(
                    "transaction %s started again at %s: the earlier start never stopped",
                    transaction_id,
                    charge_point_id,
                )
            db.execute(
                "INSERT INTO record_open VALUES (?, ?) ON CONFLICT (transaction_id) DO UPDATE SET body = excluded.body",
                (transaction_id, opened.model_dump_json()),
            )

    def record_stop(
        self,
        transaction_id: int,
        meter_stop: int,
        reason: str | None,
        timestamp: datetime | str | int,
        signed_meter_data: str | None = None,
        charge_point_id: str | None = None,
    ) -> LogEntry | None:
        """Complete the transaction's record and append it to the log; return its entry. A repeated stop
        returns the entry already logged; a stop of a transaction never started here is logged and
        skipped (None): without its start there is no complete record to vouch for. With
        ``charge_point_id`` (the daemon passes the sender's), a stop of another charge point's
        transaction is logged and skipped too: no charge point can close another's record."""
        with self.db.transaction() as db:
            db.lock("record_log")  # one appender at a time, whatever instance: one chain of records
            return self._append(transaction_id, meter_stop, reason, timestamp, signed_meter_data, charge_point_id)

    def record_decision(
        self, transaction_id: int, charge_point_id: str, meter_stop: int, decision: str
    ) -> LogEntry | None:
        """Append the operator's decision on a held transaction: its logged record again, with the decided
        ``meter_stop`` and ``decision`` as the stop reason (the latest record of a transaction is the one
        that counts; the charge point's own stop stays in the log before it). None if it was never logged."""
        with self.db.transaction() as db:
            db.lock("record_log")  # one appender at a time, whatever instance: one chain of records
            try:
                logged = self.find(transaction_id, charge_point_id)
            except RecordError:
                log.warning("transaction %s: no record to add the operator's decision to", transaction_id)
                return None
            record = Record.checked(**{**logged.record.model_dump(), "meter_stop": meter_stop, "stop_reason": decision})
            entry = self._log(transaction_id, record)
        log.info("transaction %s at %s: operator decision is record %d", transaction_id, charge_point_id, entry.index)
        return entry

    def _log(self, transaction_id: int, record: Record) -> LogEntry:
        """Append ``record`` at the head of the log."""
        index, previous = self._head()
        leaf, now = leaf_hash(index, previous, record.hash()), time.time()
        self.db.execute(
            "INSERT INTO record_log VALUES (?, ?, ?, ?, ?, ?)",
            (index, transaction_id, record.charge_point_id, record.model_dump_json(), leaf, now),
        )
        return LogEntry(index, record, previous, leaf, now)

    def _append(
        self,
        transaction_id: int,
        meter_stop: int,
        reason: str | None,
        timestamp: datetime | str | int,
        meter_data: str | None,
        charge_point_id: str | None = None,
    ) -> LogEntry | None:
        opened = self._open(transaction_id)
        if opened is not None and charge_point_id not in (None, opened.charge_point_id):
            log.warning(
                "transaction %s: stop from %s, but it started at %s: not recorded",
                transaction_id,
                charge_point_id,
                opened.charge_point_id,
            )
            return None
        if opened is None:
            done = self.db.execute(
                "SELECT idx FROM record_log WHERE transaction_id = ? ORDER BY idx DESC LIMIT 1", (transaction_id,)
            ).fetchone()
            if done is None:
                log.warning("transaction %s: stop without a recorded start, not in the record log", transaction_id)
                return None
            return self.entry(done[0])
        stop = {"stop_time": unix_seconds(timestamp), "meter_stop": meter_stop, "stop_reason": reason or ""}
        record = Record.checked(**{**opened.model_dump(), **stop, "signed_meter_data": meter_data or ""})
        entry = self._log(transaction_id, record)
        self.db.execute("DELETE FROM record_open WHERE transaction_id = ?", (transaction_id,))
        log.info(
            "transaction %s at %s/%s: record %d logged",
            transaction_id,
            record.charge_point_id,
            record.connector,
            entry.index,
        )
        return entry

    def _open(self, transaction_id: int) -> Record | None:
        """The started record of an open transaction (its stop fields still zero)."""
        row = self.db.execute("SELECT body FROM record_open WHERE transaction_id = ?", (transaction_id,)).fetchone()
        return None if row is None else Record.model_validate_json(row[0])

    def _head(self) -> tuple[int, str]:
        """The next index and the leaf it links to."""
        last = self.db.execute("SELECT idx, leaf FROM record_log ORDER BY idx DESC LIMIT 1").fetchone()
        return (0, ZERO) if last is None else (last[0] + 1, last[1])

    # -- reading
    def __len__(self) -> int:
        return self._head()[0]

    def entry(self, index: int) -> LogEntry:
        return self.entries(index, index + 1)[0]

    def entries(self, start: int = 0, stop: int | None = None) -> list[LogEntry]:
        rows = self.db.execute(
            "SELECT idx, body, leaf, appended_at FROM record_log WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, 2**62 if stop is None else stop),
        )
        previous = ZERO if start == 0 or not rows else self._leaf(start - 1)
        entries = []
        for idx, body, leaf, appended_at in rows:
            entries.append(LogEntry(idx, Record.model_validate_json(body), previous, leaf, appended_at))
            previous = leaf
        if not entries and stop == start + 1:
            raise RecordError(f"the log has no record {start}")
        return entries

    def _leaf(self, index: int) -> str:
        return self.db.execute("SELECT leaf FROM record_log WHERE idx = ?", (index,)).fetchone()[0]

    def find(self, transaction_id: int, charge_point_id: str | None = None) -> LogEntry:
        """The logged record of ``transaction_id``; when ids repeat, the latest one of ``charge_point_id``."""
        query, args = "SELECT idx, charge_point_id FROM record_log WHERE transaction_id = ?", [transaction_id]
        if charge_point_id is not None:
            query, args = query + " AND charge_point_id = ?", [transaction_id, charge_point_id]
        rows = self.db.execute(query + " ORDER BY idx", args)
        if not rows:
            at = f" of {charge_point_id}" if charge_point_id else ""
            raise RecordError(f"no record of transaction {transaction_id}{at} in the log (not stopped yet?)")
        if charge_point_id is None and len({cp for _, cp in rows}) > 1:
            cps = ", ".join(sorted({cp for _, cp in rows}))
            raise RecordError(f"transaction {transaction_id} is logged for several charge points ({cps}): name one")
        return self.entry(rows[-1][0])

    def local_anchors(self) -> list[ChainAnchor]:
        rows = self.db.execute(f"SELECT {', '.join(ANCHOR_FIELDS)} FROM record_anchors ORDER BY anchor_id")
        return [ChainAnchor(**dict(zip(ANCHOR_FIELDS, row, strict=True))) for row in rows]

    def anchor_for(self, index: int) -> ChainAnchor | None:
        return next((a for a in self.local_anchors() if a.covers(index)), None)

    def anchored_until(self) -> int:
        """The first index no local anchor covers."""
        anchors = self.local_anchors()
        return anchors[-1].first_index + anchors[-1].count if anchors else 0

    def tree_of(self, first_index: int, count: int) -> MerkleTree:
        """The Merkle tree of the log's leaves ``first_index`` .. ``first_index + count - 1``."""
        rows = self.db.execute(
            "SELECT leaf FROM record_log WHERE idx >= ? AND idx < ? ORDER BY idx", (first_index, first_index + count)
        )
        return MerkleTree([leaf for (leaf,) in rows])

    def root_of(self, first_index: int, count: int) -> str:
        return self.tree_of(first_index, count).root

    # -- anchoring
    def sync(self, operator: str) -> list[ChainAnchor]:
        """Store the anchors ``operator`` made on chain that this log does not know yet (checking that this
        log reproduces each root); return them."""
        known = len(self.local_anchors())
        found = [self.anchors.anchor_of(operator, i) for i in range(known, self.anchors.anchor_count(operator))]
        for anchor in found:
            if (
                len(self) < anchor.first_index + anchor.count
                or self.root_of(anchor.first_index, anchor.count) != anchor.root
            ):
                raise LogMismatch(
                    f"anchor {anchor.anchor_id} of {operator} (records {anchor.first_index}-{anchor.last_index}, root "
                    f"{anchor.root}) does not match this log {describe(self.location)}: is it the operator's log?"
                )
            values = asdict(anchor)
            self.db.execute(  # another instance may have stored it meanwhile
                f"INSERT INTO record_anchors ({', '.join(ANCHOR_FIELDS)}) VALUES ({', '.join('?' * len(ANCHOR_FIELDS))})"
                " ON CONFLICT (anchor_id) DO NOTHING",
                [values[name] for name in ANCHOR_FIELDS],
            )
        return found

    def is_due(self, now: float | None = None) -> bool:
        """Whether the anchoring policy asks for an anchor now."""
        waiting, oldest = self.db.execute(
            "SELECT COUNT(*), MIN(appended_at) FROM record_log WHERE idx >= ?", (self.anchored_until(),)
        ).fetchone()
        if not waiting:
            return False
        return waiting >= self.anchor_every or (now or time.time()) - oldest >= self.anchor_interval_s

    def anchor(self, sender: TxSender) -> ChainAnchor | None:
        """Anchor every record not anchored yet, in one transaction sent by ``sender``; None if none waits.
        Blocking (chain I/O): the daemon calls :meth:`anchor_due` instead."""
        self.sync(sender.address)
        first, end = self.anchored_until(), len(self)
        if first >= end:
            return None
        root = self.root_of(first, end - first)
        try:
            receipt = self.anchors.with_sender(sender).anchor(root, first, end - first)
        except ContractRevert as exc:
            if exc.name != "RangeNotContiguous":
                raise
            log.info("anchor of records %d-%d raced another one (%s): re-reading the chain", first, end - 1, exc)
            self.sync(sender.address)
            return None
        anchored = self.anchors.anchored_from(receipt)
        self.sync(sender.address)
        log.info("records %d-%d anchored: anchor %d in block %d", first, end - 1, anchored.anchor_id, anchored.block)
        return anchored

    async def anchor_due(self, sender: TxSender) -> ChainAnchor | None:
        """Anchor the waiting records when the policy says so (one at a time; chain I/O off the event loop).
        Never raises into the daemon's loop: the chain unreachable or the transaction not mined is logged
        as a warning, a refusal (an unregistered operator key, a log that does not match the chain's
        anchors) as an error; either way None, and the next call tries again."""
        if self._anchoring.locked() or not self.is_due():
            return None
        async with self._anchoring:
            try:
                return await asyncio.to_thread(self.anchor, sender)
            except (ChainUnavailable, TransactionFailed) as exc:
                log.warning("anchoring records from %d postponed: %s", self.anchored_until(), exc)
            except EVNetworkError as exc:
                log.error("anchoring records from %d failed: %s", self.anchored_until(), exc)
            return None

    def export(self, entry: LogEntry, operator: str) -> RecordExport:
        """The record of ``entry`` with its inclusion proof when a known anchor covers it."""
        exported = RecordExport(
            record=entry.record, index=entry.index, previous=entry.previous, leaf=entry.leaf, operator=operator
        )
        anchor = self.anchor_for(entry.index)
        if anchor is None:
            return exported
        tree = self.tree_of(anchor.first_index, anchor.count)
        ref = AnchorRef(chain_id=self.anchors.w3.eth.chain_id, contract=self.anchors.address, **asdict(anchor))
        return exported.model_copy(update={"anchor": ref, "proof": tree.proof(entry.leaf)})
