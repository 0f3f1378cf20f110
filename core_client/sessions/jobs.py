"""The chain job queue's vocabulary: what a job does, with what, and where it is. Pure: no I/O.

A job is one piece of chain work for one session, queued by the session service in the same SQLite
transaction as the session change that needs it, and sent by the chain worker. Each (kind, session)
is queued at most once, so each runs at most once; a session has one settle, signed or plain (the
queue keeps both under ``settle``: :attr:`JobKind.queued_as`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core_client.sessions.machine import Name


class JobKind(Name):
    """The escrow call a job makes."""

    START = "start"
    REJECT = "reject"
    SETTLE = "settle"
    SETTLE_SIGNED = "settle_signed"  # settleSigned: on the signed records of the station's meter

    @property
    def queued_as(self) -> JobKind:
        """The kind the queue keeps the job under (a session's one settle, signed or not)."""
        return JobKind.SETTLE if self is JobKind.SETTLE_SIGNED else self


class JobStatus(Name):
    """pending -> sent -> done, or failed for good (a sent job may go back to pending to be resent)."""

    PENDING = "pending"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"


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
class SettleArgs:
    """settle(sessionId, meterStop)."""

    meter_stop: int


@dataclass(frozen=True)
class SignedSettleArgs:
    """settleSigned: the Begin and End records of the station's meter (OCMF text) and its key (hex)."""

    meter_stop: int
    begin: str | None  # None: the End record holds both readings
    end: str
    meter_key: str


JobArgs = StartArgs | RejectArgs | SettleArgs | SignedSettleArgs
ARGS: dict[JobKind, type[JobArgs]] = {
    JobKind.START: StartArgs,
    JobKind.REJECT: RejectArgs,
    JobKind.SETTLE: SettleArgs,
    JobKind.SETTLE_SIGNED: SignedSettleArgs,
}


def job_args(kind: JobKind, values: dict[str, Any]) -> JobArgs:
    """The arguments of a job of ``kind`` from their stored values."""
    return ARGS[kind](**values)


@dataclass(frozen=True)
class Job:
    """One piece of chain work: start, reject or settle a session."""

    id: int
    kind: JobKind
    session_id: int
    args: JobArgs
    status: JobStatus
    tx_hash: str | None
    attempts: int
    last_error: str | None
    block: int | None
