"""The chain worker: drains the job queue (start, reject, refund, settle) into transactions, exactly once.

- Transactions go out without waiting for each other (the TxSender hands out nonces); receipts are
  polled. Job status: pending -> sent (tx hash stored) -> done | failed.
- Pending starts go out at once, batched with ``startBatch`` when several have piled up; ready
  settles (their session's start is mined) are batched with ``settleBatch`` (up to ``batch_max``,
  after waiting ``batch_window`` for more). A batch that reverts is retried one job at a time.
  A settle with an end time (OCPI: the CDR's end) goes out as ``settleAt`` / ``settleBatchAt`` /
  ``settleSignedAt``, its end kept within the session's start on chain and the time of the block being built.
- A settle queued with signed meter records (a station with a meter key, :mod:`core_client.sessions.metering`)
  goes out as ``settleSigned`` / ``settleSignedBatch`` on those records; its reverts (a key rotated
  meanwhile, MeterSignatureRequired, InvalidMeterSignature, ...) are permanent like any other.
- A revert (at gas estimation or mined) is checked against the session's state on chain: already
  in the job's target state (e.g. Settled, after a crash between sending and recording) -> done;
  otherwise -> failed, with the contract's error name, logged loudly.
- After a restart, ``sent`` jobs are re-checked (receipt, transaction still known, or state on
  chain) before anything is resent. The contract refuses a second start/reject/settle of a session,
  so even a resend cannot act twice.
- ChainUnavailable: back off and retry forever (logged once per outage).
- A card's open under a payment mandate is an OPEN_CARD job (queued as its transaction's start,
  :func:`core_client.sessions.cards.card_start`), sent alone as the mandates contract's ``openSession``;
  mined, its session is recorded from the receipt's SessionRequested (``Ledger.on_card_opened``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound

from core_client.chain.escrow_calls import settle_groups, submit
from core_client.chain.outage import Outage
from core_client.sessions.jobs import OPEN, CardOpenArgs, Job, JobKind, JobStatus
from core_client.storage.store import Store
from ev_network.contracts import Escrow, SessionState
from ev_network.errors import ChainUnavailable, ContractRevert, EVNetworkError, TransactionFailed, chain_errors
from ev_network.events import EventReader, indexed_topic, receipt_events
from ev_network.mandates import Mandates
from ev_network.pricing import Tariff
from ev_network.session_ids import hex_session_id

log = logging.getLogger("core_client.chain")
SENDS_PER_STEP = 25  # starts/rejects sent per worker cycle before receipts and settles get a turn
RECEIPT_QUERIES_AT_ONCE = 8
# Receipts are looked for when a block came since the last look (no receipt can appear without one),
# else every RECHECK_S; a transaction still without receipt is asked for again (dropped?) every
# DROP_CHECK_S, not on every poll: under load a poll per 0.1 s of every transaction in flight
# (hundreds) swamps the node that is meant to mine them.
RECHECK_S = 2.0
DROP_CHECK_S = 5.0
# On-chain states in which a job's work is done (a start is done once the session got past Requested).
TARGET = {
    JobKind.START: {SessionState.ACTIVE, SessionState.SETTLED, SessionState.EXPIRED},
    JobKind.REJECT: {SessionState.CANCELLED},
    JobKind.REFUND: {SessionState.CANCELLED},
    JobKind.SETTLE: {SessionState.SETTLED},
    JobKind.SETTLE_SIGNED: {SessionState.SETTLED},
}
# On-chain state in which a job can still be sent.
SENDABLE = {
    JobKind.START: SessionState.REQUESTED,
    JobKind.REJECT: SessionState.REQUESTED,
    JobKind.REFUND: SessionState.ACTIVE,
    JobKind.SETTLE: SessionState.ACTIVE,
    JobKind.SETTLE_SIGNED: SessionState.ACTIVE,
}


class Ledger(Protocol):
    """Where the outcome of a job goes (:class:`core_client.sessions.service.SessionService`), in the same
    SQLite transaction as the job's new status."""

    def on_job_done(self, job: Job, block: int | None, tx_hash: str | None, settled: dict[str, int] | None) -> None: ...
    def on_job_failed(self, job: Job, error: str) -> None: ...
    def on_card_opened(self, job: Job, session_id: int, requested: dict, block: int, tariff: Tariff) -> None: ...


class ChainWorker:
    """Sends the queued jobs of one operator account."""

    def __init__(
        self,
        escrow: Escrow,
        store: Store,
        service: Ledger,
        batch_max: int = 20,
        batch_window: float = 0.3,
        poll_interval: float = 0.1,
        mandates: Mandates | None = None,
    ) -> None:
        if escrow.sender is None:
            raise EVNetworkError("the chain worker needs an escrow wrapper with the operator's TxSender")
        self.escrow, self.sender, self.w3 = escrow, escrow.sender, escrow.w3
        self.reader = EventReader(escrow.w3, escrow.address)
        self.store, self.service, self.mandates = store, service, mandates
        self.thread = store.thread
        self.batch_max, self.batch_window, self.poll_interval = batch_max, batch_window, poll_interval
        self._wake = asyncio.Event()
        self._seen: dict[int, float] = {}
        self._singles: set[int] = set()
        self._hold_until = 0.0
        self._checked_head: int | None = None
        self._recheck_at = 0.0
        self._known_checked: dict[str, float] = {}  # tx hash -> when we last asked whether the node knows it
        self._stopping = False
        self.outage = Outage("chain worker")

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Work until :meth:`stop`."""
        while not self._stopping:
            try:
                busy = await self.step()
                self.outage.ok()
                delay = self.poll_interval if busy else 1.0
            except ChainUnavailable as error:
                delay = self.outage.failed(error)
            except Exception:
                log.exception("chain worker: unexpected error; retrying")
                delay = 5.0
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()

    async def drain(self, timeout: float) -> None:
        """Shutdown: wait (up to ``timeout``) for the receipts of transactions already sent."""
        deadline = time.monotonic() + timeout
        while await self.thread.run(self.store.has_jobs, JobStatus.SENT) and time.monotonic() < deadline:
            try:
                await self._check_sent()
            except ChainUnavailable:
                break
            await asyncio.sleep(self.poll_interval)

    async def step(self) -> bool:
        """Check receipts, send what is ready; True while work is pending or in flight."""
        await self._check_sent()
        if time.monotonic() >= self._hold_until:
            # Settles first (they end sessions and free deposits), then a bounded number of starts and
            # rejects, so that under load neither kind waits behind the whole queue of the other.
            await self._send_settles()
            # starts are batched as they pile up while earlier transactions are in flight (no waiting)
            limit = self.batch_max * SENDS_PER_STEP
            starts = await self.thread.run(self._pending, JobKind.START, limit)
            await self._send_batches([j for j in starts if j.kind is JobKind.START])
            for job in (j for j in starts if j.kind is JobKind.OPEN_CARD):  # openSession: one per transaction
                await self._send([job])
            for job in await self.thread.run(self._pending, JobKind.REJECT, SENDS_PER_STEP):
                await self._send([job])  # rejects and refunds (kept under reject), one per transaction
        return await self.thread.run(self.store.has_jobs, *OPEN)

    # ----------------------------------------------------------------- sending

    async def _send(self, jobs: list[Job]) -> None:
        try:
            tx_hash = await asyncio.to_thread(submit, self.escrow, self.mandates, jobs)
        except ContractRevert as error:
            if len(jobs) > 1:
                log.warning("%s batch of %d would revert (%s): sending one by one", jobs[0].kind, len(jobs), error)
                self._singles.update(j.id for j in jobs)
                return
            await self._resolve(jobs[0], str(error), resendable=False)
            return
        except TransactionFailed as error:
            log.error(
                "%s for sessions %s refused by the node: %s; retrying in 5s",
                jobs[0].kind,
                [hex_session_id(j.session_id) for j in jobs],
                error,
            )
            why = str(error)
            await self.thread.run(self._update, jobs, lambda job: {"attempts": job.attempts + 1, "last_error": why})
            self._hold_until = time.monotonic() + 5
            return
        hex_hash = "0x" + bytes(tx_hash).hex()
        sent = {"status": JobStatus.SENT, "tx_hash": hex_hash}
        await self.thread.run(self._update, jobs, lambda job: sent | {"attempts": job.attempts + 1})
        for job in jobs:
            log.info(
                "session %s: %s sent, tx %s%s",
                hex_session_id(job.session_id),
                job.kind,
                hex_hash,
                f" (batch of {len(jobs)})" if len(jobs) > 1 else "",
            )

    async def _send_settles(self) -> None:
        ready: list[Job] = []
        for job, start in await self.thread.run(self.store.pending_settles):
            if start is JobStatus.FAILED:
                await self.thread.run(self._failed, job, "its start failed")
            elif start is JobStatus.DONE:
                ready.append(job)
        if not ready:
            return
        now = time.monotonic()
        oldest = min(self._seen.setdefault(j.id, now) for j in ready)
        if len(ready) < self.batch_max and now - oldest < self.batch_window:
            return
        for group in settle_groups(ready):  # settleBatch, settleBatchAt, settleSignedBatch, settleSignedAt
            await self._send_batches(group)

    async def _send_batches(self, jobs: list[Job]) -> None:
        """Jobs of one kind in batches of up to ``batch_max``; those of a reverted batch one by one."""
        batchable = [j for j in jobs if j.id not in self._singles]
        for i in range(0, len(batchable), self.batch_max):
            await self._send(batchable[i : i + self.batch_max])
        for job in jobs:
            if job.id in self._singles:
                await self._send([job])

    # ----------------------------------------------------------------- receipts

    async def _check_sent(self) -> None:
        groups: dict[str, list[Job]] = {}
        for job in await self.thread.run(self.store.jobs, JobStatus.SENT):
            groups.setdefault(job.tx_hash or "", []).append(job)
        if not groups:
            return
        head, now = await asyncio.to_thread(self.reader.head), time.monotonic()
        if head == self._checked_head and now < self._recheck_at:
            return  # no block since the last look
        self._checked_head, self._recheck_at = head, now + RECHECK_S
        self._known_checked = {h: t for h, t in self._known_checked.items() if h in groups}
        hashes = list(groups)
        receipts: list[Any] = []
        for i in range(0, len(hashes), RECEIPT_QUERIES_AT_ONCE):  # a few JSON-RPC requests in parallel
            chunk = hashes[i : i + RECEIPT_QUERIES_AT_ONCE]
            receipts += await asyncio.gather(*(asyncio.to_thread(self._mined, h) for h in chunk))
        for tx_hash, (receipt, settled) in zip(hashes, receipts, strict=True):
            await asyncio.sleep(0)  # a batch's jobs are many: let OCPP replies through between receipts
            jobs = groups[tx_hash]
            if receipt is None:
                if now - self._known_checked.get(tx_hash, -DROP_CHECK_S) < DROP_CHECK_S:
                    continue
                self._known_checked[tx_hash] = now
                if not await asyncio.to_thread(self._known, tx_hash):
                    self.sender.resync()  # its nonce may be free again: do not leave a gap
                    for job in jobs:
                        await self._resolve(job, f"transaction {tx_hash} was dropped", resendable=True)
                continue
            if receipt["status"] == 1 and jobs[0].kind is JobKind.OPEN_CARD:
                await self._card_opened(jobs[0], receipt, tx_hash)
            elif receipt["status"] == 1:
                done = [(job, receipt["blockNumber"], tx_hash, settled.get(job.session_id)) for job in jobs]
                await self.thread.run(self._all_done, done)
            elif len(jobs) > 1:
                log.warning("batch %s reverted: sending its %d %ss one by one", tx_hash, len(jobs), jobs[0].kind)
                self._singles.update(j.id for j in jobs)
                again = {"status": JobStatus.PENDING, "tx_hash": None, "last_error": "batch reverted"}
                await self.thread.run(self._update, jobs, lambda _, again=again: again)
            else:
                await self._resolve(jobs[0], await self._revert_reason(tx_hash), resendable=False)

    async def _resolve(self, job: Job, error: str, resendable: bool) -> None:
        """A job whose transaction reverted or vanished: decide from the session's state on chain."""
        if isinstance(job.args, CardOpenArgs):  # no session on chain before its open is mined
            if resendable:
                log.warning("card open of transaction %d: %s; sending again", job.args.transaction_id, error)
                await self.thread.run(self._again, job, error)
            else:
                await self.thread.run(self._failed, job, error)
            return
        state = (await asyncio.to_thread(self.escrow.get_session, job.session_id)).state
        if state is SessionState.CLOSED:  # the driver's lane moved on: the events tell how it ended
            state = await self._outcome(job.session_id)
        if state in TARGET[job.kind]:
            settled = await self._find_settlement(job.session_id) if job.kind.queued_as is JobKind.SETTLE else None
            log.info("session %s: %s already done on chain (%s)", hex_session_id(job.session_id), job.kind, state.name)
            await self.thread.run(self._all_done, [(job, None, None, settled)])
        elif resendable and state is SENDABLE[job.kind]:
            log.warning("session %s: %s: %s; sending again", hex_session_id(job.session_id), job.kind, error)
            await self.thread.run(self._again, job, error)
        else:
            await self.thread.run(self._failed, job, f"{error} (session is {state.name} on chain)")

    # The store's side of the worker's steps: run on the store's thread (the worker awaits them).

    def _pending(self, kind: JobKind, limit: int) -> list[Job]:
        return self.store.jobs(JobStatus.PENDING, kind=kind, limit=limit)

    def _update(self, jobs: list[Job], changes: Callable[[Job], dict[str, Any]]) -> None:
        with self.store.transaction():
            for job in jobs:
                self.store.update_job(job.id, **changes(job))

    def _again(self, job: Job, error: str) -> None:
        self.store.update_job(job.id, status=JobStatus.PENDING, tx_hash=None, last_error=error)

    def _all_done(self, done: list[tuple[Job, int | None, str | None, dict[str, int] | None]]) -> None:
        """Jobs mined (or found done), each committed with what the session service makes of it."""
        for job, block, tx_hash, settled in done:
            with self.store.transaction():
                self.store.update_job(job.id, status=JobStatus.DONE, block=block, last_error=None)
                self.service.on_job_done(job, block, tx_hash, settled)
            self._seen.pop(job.id, None)
            self._singles.discard(job.id)

    async def _card_opened(self, job: Job, receipt: Any, tx_hash: str) -> None:
        """A card's open is mined: its session, as the receipt's SessionRequested tells, is recorded."""
        requested = receipt_events(receipt, self.escrow.address, "SessionRequested")[0]
        tariff = await asyncio.to_thread(self.escrow.get_tariff, requested["tariffId"])
        await self.thread.run(self._opened, job, requested, receipt["blockNumber"], tariff)
        assert isinstance(job.args, CardOpenArgs)
        log.info("card open of transaction %d mined, tx %s", job.args.transaction_id, tx_hash)

    def _opened(self, job: Job, requested: dict, block: int, tariff: Tariff) -> None:
        with self.store.transaction():
            self.store.update_job(job.id, status=JobStatus.DONE, block=block, last_error=None)
            self.service.on_card_opened(job, requested["sessionId"], requested, block, tariff)

    def _failed(self, job: Job, error: str) -> None:
        with self.store.transaction():
            self.store.update_job(job.id, status=JobStatus.FAILED, last_error=error)
            self.service.on_job_failed(job, error)

    # ------------------------------------------------------------ chain reads

    def _mined(self, tx_hash: str) -> tuple[Any, dict[int, dict[str, int]]]:
        """The receipt (None: not mined yet) and the settlements in it, decoded here in the calling
        (worker) thread: decoding events is pure Python that would hold up the event loop."""
        receipt = self._receipt(tx_hash)
        return receipt, self._settled_in(receipt) if receipt is not None and receipt["status"] == 1 else {}

    def _receipt(self, tx_hash: str) -> Any:
        """The receipt of the job's transaction (or of a version of it the sender re-sent with a higher fee)."""
        return self.sender.receipt(HexBytes(tx_hash))

    def _known(self, tx_hash: str) -> bool:
        try:
            with chain_errors(self.w3):
                self.w3.eth.get_transaction(HexBytes(tx_hash))
            return True
        except TransactionNotFound:
            return False

    async def _revert_reason(self, tx_hash: str) -> str:
        try:
            await asyncio.to_thread(self.sender.wait, HexBytes(tx_hash))
        except (ContractRevert, TransactionFailed) as error:
            return str(error)
        return "reverted"

    def _settled_in(self, receipt: Any) -> dict[int, dict[str, int]]:
        events = receipt_events(receipt, self.escrow.address, "SessionSettled")
        return {e["sessionId"]: {"cost": e["cost"], "refund": e["refund"]} for e in events}

    async def _find_settlement(self, session_id: int) -> dict[str, int] | None:
        head = await asyncio.to_thread(self.reader.head)
        events = await asyncio.to_thread(
            self.reader.fetch, await self._from_block(session_id), head, ["SessionSettled"], [indexed_topic(session_id)]
        )
        return {"cost": events[0].args["cost"], "refund": events[0].args["refund"]} if events else None

    async def _outcome(self, session_id: int) -> SessionState:
        """How a Closed session ended, from its final event."""
        outcome = await asyncio.to_thread(self.reader.outcome, session_id, await self._from_block(session_id))
        return outcome or SessionState.CLOSED

    async def _from_block(self, session_id: int) -> int:
        s = await self.thread.run(self.store.get_session, session_id)
        return s.requested_block if s else 0
