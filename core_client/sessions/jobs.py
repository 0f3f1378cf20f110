"""The chain job queue's vocabulary: what a job does, with what, and where it is. Pure: no I/O.

A job is one piece of chain work for one session, queued by the session service in the same SQLite
transaction as the session change that needs it, and sent by the chain worker. Each (kind, session)
is queued at most once, so each runs at most once; a session has one settle, signed or plain (the
queue keeps both under ``settle``: :attr:`JobKind.queued_as`); a session has one refund of its deposit, a
reject before its start or a refund after it (kept under ``reject``); a card's open under a payment mandate is
its transaction's start, queued under the transaction id until mined (then moved to the session's id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core_client.sessions.machine import Name


class JobKind(Name):
    """The escrow call a job makes."""

    START = "start"
    REJECT = "reject"
    REFUND = "refund"  # refundActive: the operator rejects a held (started) session, its deposit back in full
    SETTLE = "settle"
    SETTLE_SIGNED = "settle_signed"  # settleSigned: on the signed records of the station's meter
    OPEN_CARD = "open_card"  # the mandates contract's openSession: a card's session opened and started

    @property
    def queued_as(self) -> JobKind:
        """The kind the queue keeps the job under (a session's one settle, signed or not; its one refund, a
        reject before the start or a refund after it; a card's open is its start)."""
        return QUEUED_AS.get(self, self)


class JobStatus(Name):
    """pending -> sent -> done, or failed for good (a sent job may go back to pending to be resent)."""

    PENDING = "pending"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"


QUEUED_AS = {JobKind.SETTLE_SIGNED: JobKind.SETTLE, JobKind.REFUND: JobKind.REJECT, JobKind.OPEN_CARD: JobKind.START}

#: Jobs still to be worked on.
OPEN = (JobStatus.PENDING, JobStatus.SENT)


@dataclass(frozen=True)
class StartArgs:
    """start(sessionId, transactionId, meterStart)."""

    transaction_id: int
    meter_start: int


@dataclass(frozen=True)
class RejectArgs:
    """reject(sessionId, reason): a :class:`ev_network.contracts.CancelReason`."""

    reason: int


@dataclass(frozen=True)
class RefundArgs:
    """refund(sessionId): no arguments beyond the session."""


@dataclass(frozen=True)
class SettleArgs:
    """settle(sessionId, meterStop); with ``ended_at`` (unix seconds), settleAt: the time fee counts until then
    (the end a CSMS's CDR gives), not until the settle's block."""

    meter_stop: int
    ended_at: int | None = None


@dataclass(frozen=True)
class SignedSettleArgs:
    """settleSigned: the Begin and End records of the station's meter (OCMF text) and its key (hex); with
    ``ended_at``, settleSignedAt (as :class:`SettleArgs`)."""

    meter_stop: int
    begin: str | None  # None: the End record holds both readings
    end: str
    meter_key: str
    ended_at: int | None = None


@dataclass(frozen=True)
class CardOpenArgs:
    """openSession(mandateId, tokenRef, stationId, connector, deposit, transactionId, meterStart) of the
    mandates contract; ``payer`` (the mandate's) matches the SessionRequested it causes."""

    mandate_id: int
    token_ref: str  # hex
    payer: str
    station_id: int
    connector: int
    deposit: int
    transaction_id: int
    meter_start: int


JobArgs = StartArgs | RejectArgs | RefundArgs | SettleArgs | SignedSettleArgs | CardOpenArgs
ARGS: dict[JobKind, type[JobArgs]] = {
    JobKind.START: StartArgs,
    JobKind.REJECT: RejectArgs,
    JobKind.REFUND: RefundArgs,
    JobKind.SETTLE: SettleArgs,
    JobKind.SETTLE_SIGNED: SignedSettleArgs,
    JobKind.OPEN_CARD: CardOpenArgs,
}


def job_args(kind: JobKind, values: dict[str, Any]) -> JobArgs:
    """The arguments of a job of ``kind`` from their stored values."""
    return ARGS[kind](**values)


def stored_kind(queued_as: JobKind, values: dict[str, Any]) -> JobKind:
    """The kind of a job the queue keeps under ``queued_as``, from its stored values."""
    if queued_as is JobKind.SETTLE and "begin" in values:
        return JobKind.SETTLE_SIGNED
    if queued_as is JobKind.START and "mandate_id" in values:
        return JobKind.OPEN_CARD
    if queued_as is JobKind.REJECT and "reason" not in values:
        return JobKind.REFUND
    return queued_as


@dataclass(frozen=True)
class Job:
    """One piece of chain work: start, reject, refund or settle a session."""

    id: int
    kind: JobKind
    session_id: int
    args: JobArgs
    status: JobStatus
    tx_hash: str | None
    attempts: int
    last_error: str | None
    block: int | None
