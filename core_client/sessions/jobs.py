"""The chain job queue's vocabulary: what a job does and where it is. Pure: no I/O.

A job is one piece of chain work for one session, queued by the session service in the same SQLite
transaction as the session change that needs it, and sent by the chain worker. Each (kind, session)
is queued at most once, so each runs at most once.
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


class JobStatus(Name):
    """pending -> sent -> done, or failed for good (a sent job may go back to pending to be resent)."""

    PENDING = "pending"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"


#: Jobs still to be worked on.
OPEN = (JobStatus.PENDING, JobStatus.SENT)


@dataclass(frozen=True)
class Job:
    """One piece of chain work: start, reject or settle a session."""

    id: int
    kind: JobKind
    session_id: int
    args: dict[str, Any]
    status: JobStatus
    tx_hash: str | None
    attempts: int
    last_error: str | None
    block: int | None
