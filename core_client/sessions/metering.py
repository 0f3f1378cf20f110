"""The signed meter rule: sessions at a station whose meter key is registered on chain. Pure: no I/O.

The service hands in the station's key (read from the chain and cached). At such a station the
session's idTag is :func:`ev_network.ocmf.session_id_tag` (the meter signs it as ID), and
StopTransaction settles exactly the signed energy: the Begin record (MeterValues, context
``Transaction.Begin``) and the End record (StopTransaction's ``transactionData``, ``Transaction.End``),
or an End record alone that holds both readings (meters that sign once per transaction), are checked as
the escrow will check them (:func:`ev_network.ocmf.signed_settlement`) before
``settle`` is queued. Records that fail hold the session (no transaction, no gas spent: "no proof, no
pay"; the driver's reclaim refunds the whole deposit) and flag the charge point (:class:`MeterProblem`,
listed in /health).
"""

from __future__ import annotations

from ocpp.v16.enums import AuthorizationStatus, ReadingContext

from core_client.sessions.actions import Decision, MeterProblem, QueueJob, SaveSession, decide, info, warning
from core_client.sessions.jobs import JobKind, SignedSettleArgs
from core_client.sessions.machine import Event, SessionRecord
from ev_network import ocmf
from ev_network.session_ids import hex_session_id

#: the contexts of signed records (plain text: they are stored)
BEGIN, END = ReadingContext.transaction_begin.value, ReadingContext.transaction_end.value
ACCEPTED = AuthorizationStatus.accepted


def id_tag(s: SessionRecord, signed: bool) -> str:
    """The idTag naming ``s`` at its charge point: the one its meter signs at a station with a meter key."""
    return ocmf.session_id_tag(s.session_id) if signed else s.id_tag


def signed_stop(
    s: SessionRecord,
    reason: str | None,
    now: float,
    meter_key: bytes,
    records: dict[str, str],
    ended_at: int | None = None,
) -> Decision:
    """StopTransaction at a station with a meter key: settle the signed energy (the time until ``ended_at`` if
    given, see :class:`SignedSettleArgs`), or hold the session."""
    begin, end = records.get(BEGIN), records.get(END)
    try:
        if end is None:
            raise ocmf.OCMFError("no signed Transaction.End record")
        end_record, begin_record = ocmf.parse(end), ocmf.parse(begin) if begin is not None else None
        settlement = ocmf.signed_settlement(s.session_id, begin_record, end_record, meter_key)
    except ocmf.OCMFError as error:
        problem = f"meter records refused: {error}"
        held = s.apply(Event.STOP_HELD, stop_reason=reason, stopped_at=now, last_error=problem)
        return decide(
            ACCEPTED,
            SaveSession(held),
            MeterProblem(s.charge_point_id, str(error)),
            warning(f"session {hex_session_id(s.session_id)}: HELD, not settled ({s.charge_point_id}): {problem}"),
        )
    one_record = ocmf.holds_both_readings(end_record)
    first = (end_record if one_record else begin_record).reading(ocmf.Reason.BEGIN).wh
    stopped = s.apply(
        Event.STOP_TRANSACTION, meter_start=first, meter_stop=settlement[1], stop_reason=reason, stopped_at=now
    )
    args = SignedSettleArgs(settlement[1], None if one_record else begin, end, meter_key.hex(), ended_at)
    note = info(
        f"session {hex_session_id(s.session_id)}: StopTransaction ({reason or 'no reason'}), signed {first}..{settlement[1]} Wh verified, "
        f"{stopped.energy_wh} Wh; signed settle queued"
    )
    return decide(ACCEPTED, SaveSession(stopped), QueueJob(JobKind.SETTLE_SIGNED, s.session_id, args), note)
