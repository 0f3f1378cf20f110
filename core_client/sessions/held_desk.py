"""The operator's desk for held sessions: lists them with their evidence and applies the operator's
decisions (:mod:`core_client.sessions.held`) through the session service, so the state machine, the job
queue and the logs see them like any other decision; each decision also goes to the transaction record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core_client.sessions import held
from core_client.sessions.actions import SaveSession
from core_client.sessions.machine import SessionRecord, State
from core_client.sessions.service import SessionService


class HeldDesk:
    """Held sessions of one session service. ``reclaim_after_s``: the escrow's max duration + reclaim grace
    (when the driver can take the deposit back); ``record``: called with each decided session."""

    def __init__(
        self,
        service: SessionService,
        reclaim_after_s: int | None = None,
        record: Callable[[SessionRecord, str], None] = lambda s, what: None,
    ) -> None:
        self.service, self.store = service, service.store
        self.reclaim_after_s, self.record = reclaim_after_s, record

    def sessions(self) -> list[dict[str, Any]]:
        """Every held session with the evidence an operator decides on (:func:`held.evidence`)."""
        return [held.evidence(s, self.context(s)) for s in self.store.sessions_in({State.HELD})]

    def decide(self, session_id: int, settle: bool) -> dict[str, Any]:
        """Apply the operator's decision (settle at the last trusted reading, or reject); raises
        :class:`held.Refused` where the rules do not allow it."""
        s = self.service.session(session_id)
        rule = held.settle_held if settle else held.reject_held
        decision = self.service.apply(rule(s, self.context(s) if s is not None else None))
        decided = next(a.record for a in decision.actions if isinstance(a, SaveSession))
        outcome = f"at {decided.meter_stop} Wh" if settle else "deposit refunded in full"
        self.record(decided, f"operator decision: {decision.reply['decision']}, {outcome}")
        return decision.reply

    def context(self, s: SessionRecord) -> held.Context:
        tx = self.store.get_transaction(s.transaction_id) if s.transaction_id is not None else None
        started = s.started_at
        reclaim_at = None if started is None or self.reclaim_after_s is None else int(started) + self.reclaim_after_s
        return held.Context(
            id_tag=self.service.charge_point_tag(s),
            claimed_stop=tx.meter_stop if tx is not None else None,
            records=self.store.meter_records(s.session_id),
            signed=self.service.meter_keys.get(s.station_id) != b"",  # a key not read yet: no plain settle
            reclaim_at=reclaim_at,
        )
