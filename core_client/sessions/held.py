"""Held sessions an operator decides (issue 19). Pure: no I/O.

A session is HELD when its charge point's stop could not be trusted: a meterStop beyond what the connector
can deliver, or signed meter records that were refused. The operator looks at the evidence
(:func:`evidence`) and decides:

- **settle** (:func:`settle_held`): at the session's last trusted reading (the last reading that passed the
  plausibility rule, else its start), through the plain ``settle``. Where the rules do not allow it, the
  decision is refused and says why: at a station with a meter key the escrow pays only on signed records.
- **reject** (:func:`reject_held`): refund the driver in full through the escrow's ``refundActive`` (the operator
  takes nothing; a payment mandate's session refunds its payer), allowed at every station.

Every decision is a :class:`~core_client.sessions.actions.Decision` applied by the session service (saved,
logged, its settle queued) and written to the transaction record by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core_client.sessions.actions import Decision, QueueJob, SaveSession, decide, warning
from core_client.sessions.jobs import JobKind, RefundArgs, SettleArgs
from core_client.sessions.machine import Event, SessionRecord, State
from ev_network.session_ids import hex_session_id


class Refused(Exception):
    """An operator's decision the rules do not allow (the message says why, in one line)."""


@dataclass(frozen=True)
class Context:
    """What the service knows around a held session: the idTag its charge point used, the meter stop the
    charge point claimed, its signed records, whether its station has a meter key, and when the driver can
    reclaim the deposit on chain (unix time; None if not known)."""

    id_tag: str
    claimed_stop: int | None
    records: dict[str, str]
    signed: bool
    reclaim_at: int | None


def trusted_reading(s: SessionRecord) -> int:
    """The last trusted reading of ``s``: the last one that passed the plausibility rule, else its start."""
    start = s.meter_start or 0
    return max(start, s.meter_last) if s.meter_last is not None else start


def evidence(s: SessionRecord, ctx: Context) -> dict[str, Any]:
    """A held session as the operator sees it (JSON): why it is held and the readings and records behind it."""
    return {
        "session_id": hex_session_id(s.session_id),
        "id_tag": ctx.id_tag,
        "charge_point_id": s.charge_point_id,
        "connector": s.connector,
        "reason": s.last_error,
        "meter_start": s.meter_start,
        "last_trusted_reading": trusted_reading(s),
        "claimed_meter_stop": ctx.claimed_stop,
        "started_at": s.started_at,
        "stopped_at": s.stopped_at,
        "deposit": s.deposit,
        "signed_station": ctx.signed,
        "records": ctx.records,
        "reclaim_at": ctx.reclaim_at,
        "can_settle": not ctx.signed,
    }


def settle_held(s: SessionRecord | None, ctx: Context | None) -> Decision:
    """The operator settles a held session at its last trusted reading; Refused where the rules forbid it."""
    held = _held(s)
    assert ctx is not None
    if ctx.signed:
        raise Refused(
            f"session {hex_session_id(held.session_id)}: its station has a meter key, the escrow pays only on "
            f"signed records{_reclaim(ctx)}"
        )
    reading = trusted_reading(held)
    settled = held.apply(Event.HELD_SETTLED, meter_stop=reading)
    claimed = f" (the charge point claimed {ctx.claimed_stop} Wh)" if ctx.claimed_stop is not None else ""
    return decide(
        {"session_id": hex_session_id(held.session_id), "decision": "settle", "meter_stop": reading},
        SaveSession(settled),
        QueueJob(JobKind.SETTLE, held.session_id, SettleArgs(reading)),
        warning(
            f"session {hex_session_id(held.session_id)}: operator decision: settle the held session at the last "
            f"trusted reading {reading} Wh, {settled.energy_wh} Wh{claimed}; settle queued"
        ),
    )


def reject_held(s: SessionRecord | None, ctx: Context | None) -> Decision:
    """The operator rejects a held session: the escrow's ``refundActive`` queued, the whole deposit back to the driver."""
    held = _held(s)
    rejected = held.apply(Event.HELD_REJECTED, last_error=f"refunded by the operator's decision; {held.last_error}")
    claimed = f" (the charge point claimed {ctx.claimed_stop} Wh)" if ctx is not None and ctx.claimed_stop else ""
    return decide(
        {"session_id": hex_session_id(held.session_id), "decision": "reject", "refund": held.deposit},
        SaveSession(rejected),
        QueueJob(JobKind.REFUND, held.session_id, RefundArgs()),
        warning(
            f"session {hex_session_id(held.session_id)}: operator decision: reject the held session{claimed}, "
            f"refund the whole deposit {held.deposit}; refund queued"
        ),
    )


def _held(s: SessionRecord | None) -> SessionRecord:
    if s is None:
        raise Refused("no such session")
    if s.state is not State.HELD:
        raise Refused(f"session {hex_session_id(s.session_id)} is {s.state.value}, not held")
    return s


def _reclaim(ctx: Context) -> str:
    return f": the driver can reclaim the whole deposit from unix time {ctx.reclaim_at}" if ctx.reclaim_at else ""


def decision_line(reply: dict[str, Any]) -> str:
    """The operator's decision as its answer reads in one line (the CLI's and the dashboard's)."""
    if reply.get("decision") == "settle":
        return f"{reply['session_id']}: settle queued at {reply['meter_stop']} Wh (the last trusted reading)"
    return f"{reply['session_id']}: rejected, refund of the whole deposit queued"
