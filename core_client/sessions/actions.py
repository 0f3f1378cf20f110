"""What the session decisions return: small frozen records of what to do, applied by
:meth:`core_client.sessions.service.SessionService.apply`. Pure: no I/O."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core_client.sessions.jobs import JobArgs, JobKind
from core_client.sessions.machine import SessionRecord
from ev_network.session_ids import hex_session_id


@dataclass(frozen=True)
class SaveSession:
    record: SessionRecord


@dataclass(frozen=True)
class QueueJob:
    kind: JobKind
    session_id: int
    args: JobArgs


@dataclass(frozen=True)
class SendRemoteStart:
    session_id: int
    charge_point_id: str
    connector: int
    id_tag: str


@dataclass(frozen=True)
class SendRemoteStop:
    charge_point_id: str
    transaction_id: int
    session_id: int | None = None  # None: a transaction we refused


@dataclass(frozen=True)
class MeterProblem:
    """A charge point whose signed meter records failed the check (listed in /health)."""

    charge_point_id: str
    error: str


@dataclass(frozen=True)
class Log:
    level: int
    message: str


Action = SaveSession | QueueJob | SendRemoteStart | SendRemoteStop | MeterProblem | Log


@dataclass(frozen=True)
class Decision:
    """The answer to an input (None if it needs none) and what follows from it."""

    reply: Any = None
    actions: tuple[Action, ...] = ()


def decide(reply: Any = None, *actions: Action) -> Decision:
    return Decision(reply, actions)


def info(message: str) -> Log:
    return Log(logging.INFO, message)


def session_named(s: SessionRecord) -> str:
    """``session 0x...``: a session in a log line or an error."""
    return f"session {hex_session_id(s.session_id)}"


def warning(message: str) -> Log:
    return Log(logging.WARNING, message)


class OutOfRange(ValueError):
    """An integer in an OCPP message outside the range the Core Client (and SQLite) can take."""

    def __init__(self, name: str, value: int, low: int, high: int) -> None:
        shown = str(value) if abs(value) < 10**30 else f"a number of {value.bit_length()} bits"
        super().__init__(f"{name} must be in [{low}, {high}), got {shown}")
        self.name, self.value, self.low, self.high = name, value, low, high


def check_range(name: str, value: int | None, high: int, low: int = 0) -> None:
    """Raise OutOfRange unless ``low <= value < high`` (None passes: an absent optional field)."""
    if value is not None and not low <= value < high:
        raise OutOfRange(name, value, low, high)
