"""The signed meter records kept for each session at a station with a meter key: the OCMF records its charge
point sends (the Begin record in a MeterValues; the End record, and the Begin one if none was kept, in the
StopTransaction's transactionData), read from the OCPP values and written to the store for the signed settle
(:mod:`core_client.sessions.metering`). An unreadable record is logged and flags the charge point
(:attr:`MeterRecords.problems`, shown in /health)."""

from __future__ import annotations

import logging
import time

from core_client.sessions import metering
from core_client.sessions.machine import SessionRecord
from core_client.storage.store import Store
from ev_network import ocmf
from ev_network.session_ids import hex_session_id

log = logging.getLogger("core_client.sessions")


class MeterRecords:
    """The sessions' signed meter records, kept in the store; the charge points whose last record was refused."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.problems: dict[str, dict] = {}  # charge point id -> its last refused record (/health)

    def begin(self, cp_id: str, s: SessionRecord, values: list) -> None:
        """Keep the session's Begin record, if ``values`` (a MeterValues') hold one."""
        self._keep(cp_id, s, values, metering.BEGIN)

    def at_stop(self, cp_id: str, s: SessionRecord, values: list) -> None:
        """Keep the session's End record found in a StopTransaction's ``values``, and its Begin record there
        if none was kept before."""
        kept = self.store.meter_records(s.session_id)
        for context in (metering.END,) if metering.BEGIN in kept else (metering.BEGIN, metering.END):
            self._keep(cp_id, s, values, context)

    def _keep(self, cp_id: str, s: SessionRecord, values: list, context: str) -> None:
        try:
            record = ocmf.signed_record(values, context)
        except ocmf.OCMFError as error:
            label = hex_session_id(s.session_id)
            log.warning("%s: unreadable %s record of session %s: %s", cp_id, context, label, error)
            self.problems[cp_id] = {"error": str(error), "at": time.time()}
            return
        if record is not None:
            self.store.save_meter_record(s.session_id, context, record.text)
