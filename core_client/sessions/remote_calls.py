"""The reconcile loop's decisions: dispatch a new session (RemoteStart, or reject it: station offline,
connector busy, not Requested on chain), the answers to RemoteStart and RemoteStop, start timeouts. Pure:
no I/O, no clock (the loop, :mod:`core_client.sessions.reconcile`, applies them through the service)."""

from __future__ import annotations

from ocpp.v16.enums import ChargePointStatus as Status

from core_client.sessions import metering
from core_client.sessions.actions import (
    Decision,
    QueueJob,
    SaveSession,
    SendRemoteStart,
    SendRemoteStop,
    decide,
    info,
    session_named,
    warning,
)
from core_client.sessions.jobs import JobKind, RejectArgs
from core_client.sessions.machine import HOLDS_CONNECTOR, Event, SessionRecord, State, can
from ev_network.contracts import CancelReason, SessionState

BUSY_STATUSES = frozenset(
    {Status.charging, Status.suspended_ev, Status.suspended_evse, Status.finishing, Status.reserved}
)


def reject(s: SessionRecord, reason: CancelReason, now: float, why: str) -> Decision:
    """Queue ``reject`` (full refund) if the session can still be rejected."""
    if not can(s.state, Event.REJECT_QUEUED):
        return Decision()
    rejecting = s.apply(Event.REJECT_QUEUED, reject_reason=int(reason), finished_at=now)
    return decide(
        True,
        SaveSession(rejecting),
        QueueJob(JobKind.REJECT, s.session_id, RejectArgs(int(reason))),
        info(f"{session_named(s)}: {why}; reject queued ({reason.name})"),
    )


def connector_busy(s: SessionRecord, others: list[SessionRecord], status: str | None) -> bool:
    """Whether another session holds the connector (of two new ones the first requested gets it: tags
    count sessions in arrival order, ids do not) or the charge point says it is in use."""
    for other in others:
        if other.session_id == s.session_id or other.connector != s.connector or other.state not in HOLDS_CONNECTOR:
            continue
        if other.state is not State.REQUESTED or (other.tag or 0) < (s.tag or 0):
            return True
    return status in BUSY_STATUSES


def dispatch(
    s: SessionRecord,
    online: bool,
    in_grace: bool,
    busy: bool,
    chain_state: SessionState | None,
    now: float,
    signed: bool = False,
) -> Decision | None:
    """A new session: RemoteStart, or reject (station offline, connector busy, not Requested on chain).
    None: wait (the station may reconnect within the grace period after a start)."""
    if not online:
        return (
            None
            if in_grace
            else reject(s, CancelReason.STATION_OFFLINE, now, f"station {s.charge_point_id} is offline")
        )
    if busy:
        return reject(s, CancelReason.CONNECTOR_BUSY, now, f"connector {s.charge_point_id}/{s.connector} is busy")
    if chain_state is not None and chain_state is not SessionState.REQUESTED:
        return reject(s, CancelReason.OTHER, now, f"{chain_state.name} on chain, not starting it")
    return remote_start(s.apply(Event.REMOTE_START_SENT, remote_start_at=now), signed=signed)


def remote_start(s: SessionRecord, again: bool = False, signed: bool = False) -> Decision:
    """Send (or, after a restart or reconnect, send again) the RemoteStart of a session in REMOTE_START_SENT."""
    tag = metering.id_tag(s, signed)
    note = info(
        f"{session_named(s)}: sending RemoteStart{' again' if again else ''} to {s.charge_point_id}/{s.connector} ({tag})"
    )
    return decide(None, SaveSession(s), note, SendRemoteStart(s.session_id, s.charge_point_id, s.connector, tag))


def remote_start_answered(s: SessionRecord, accepted: bool, again: bool, now: float) -> Decision:
    """The charge point's answer to RemoteStart: a refusal rejects the session (a refusal of a re-sent
    one may mean it is already charging for it: the start timeout decides)."""
    if accepted or again:
        return Decision()
    return reject(s, CancelReason.CHARGER_REJECTED, now, f"{s.charge_point_id} rejected the RemoteStart")


def start_timed_out(s: SessionRecord, now: float, timeout_s: float) -> Decision | None:
    if s.state is State.REMOTE_START_SENT and now - (s.remote_start_at or now) > timeout_s:
        return reject(s, CancelReason.OTHER, now, f"no StartTransaction within {timeout_s:g}s")
    return None


def remote_stop(s: SessionRecord) -> Decision:
    note = info(f"{session_named(s)}: sending RemoteStop to {s.charge_point_id} ({s.stop_wanted})")
    return decide(None, note, SendRemoteStop(s.charge_point_id, s.transaction_id or 0, s.session_id))


def remote_stop_answered(s: SessionRecord, accepted: bool) -> Decision:
    notes = () if accepted else (warning(f"{session_named(s)}: {s.charge_point_id} rejected the RemoteStop"),)
    if can(s.state, Event.REMOTE_STOP_SENT):
        return decide(None, *notes, SaveSession(s.apply(Event.REMOTE_STOP_SENT)))
    return decide(None, *notes)
