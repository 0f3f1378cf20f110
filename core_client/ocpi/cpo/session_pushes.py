"""The sessions of roaming eMSPs pushed to them (their Sessions and CDRs RECEIVERs, 2.2.1 "Sender" push):
once the charge point started the transaction a PUT of the Session (ACTIVE), a PATCH of ``kwh`` as the
meter advances, a PATCH to COMPLETED when it stopped, and once the session is settled on chain a POST of
its CDR naming the settlement transaction. A session whose start or open on chain was refused is pushed
(PUT, or PATCH once it was ACTIVE) with status INVALID, and no CDR follows. Each step is kept with the session (``RoamingSession.pushed``),
so an eMSP that was unreachable gets it on a later round; nothing is pushed twice."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Protocol

from core_client.ocpi.cpo.outbound import send_to
from core_client.ocpi.cpo.peers import Peer, PeerStore
from core_client.ocpi.cpo.roaming import Roaming, RoamingSession
from core_client.ocpi.cpo.session_objects import Money, cdr_object, kwh, session_object
from core_client.ocpi.cpo.settings import CpoSettings
from core_client.ocpi.errors import OcpiError
from core_client.ocpi.models.base import format_datetime
from core_client.ocpi.models.enums import InterfaceRole, ModuleID
from core_client.sessions.jobs import JobKind, JobStatus
from core_client.sessions.machine import SessionRecord, State
from core_client.storage.store import Store

log = logging.getLogger("core_client.ocpi")


class Sessions(Protocol):
    """What the pushes read of :class:`core_client.sessions.service.SessionService`."""

    def session_of_transaction(self, transaction_id: int) -> SessionRecord | None: ...


class SessionPushes:
    """Pushes the sessions of ``roaming`` to their eMSPs (:meth:`round`, called every second)."""

    def __init__(
        self, settings: CpoSettings, peers: PeerStore, roaming: Roaming, sessions: Sessions, store: Store, money: Money
    ) -> None:
        self.settings, self.peers, self.roaming = settings, peers, roaming
        self.sessions, self.store, self.money = sessions, store, money

    async def round(self) -> None:
        for roaming in self.roaming.sessions():
            if roaming.transaction_id is None or roaming.pushed in ("CDR", "INVALID"):
                continue
            peer = next((p for p in self.peers.all() if p.name == roaming.emsp and p.registered), None)
            if peer is not None:
                await self._push(peer, roaming, self.sessions.session_of_transaction(roaming.transaction_id))

    async def _push(self, peer: Peer, roaming: RoamingSession, record: SessionRecord | None) -> None:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        us = self.settings.party
        session = session_object(roaming, record, us, self.settings.currency, now)
        path = f"{us.country_code}/{us.party_id}/{roaming.id}"
        if roaming.pushed is None:
            if await self._send(peer, ModuleID.SESSIONS, "PUT", path, session.to_json()):
                self.roaming.update(roaming.id, pushed=session.status.value, pushed_kwh=session.kwh)
            return
        if roaming.pushed == "ACTIVE" and (session.status.value != "ACTIVE" or session.kwh != roaming.pushed_kwh):
            body: dict[str, Any] = {"kwh": float(session.kwh), "last_updated": format_datetime(now)}
            if session.status.value != "ACTIVE":
                body |= {"status": session.status.value, "end_date_time": format_datetime(session.end_date_time)}
            if await self._send(peer, ModuleID.SESSIONS, "PATCH", path, body):
                self.roaming.update(roaming.id, pushed=session.status.value, pushed_kwh=kwh(record))
            return
        settle = None if record is None else self.store.job(JobKind.SETTLE, record.session_id)
        if record is None or record.state is not State.SETTLED or settle is None or settle.status is not JobStatus.DONE:
            return
        site = self.settings.sites.get(roaming.charge_point_id)
        if site is None or settle.tx_hash is None:
            return
        cdr = cdr_object(
            roaming, record, settle.tx_hash, site, record.station_id, us, self.money,
            self.store.meter_records(record.session_id), now,
        )  # fmt: skip
        if await self._send(peer, ModuleID.CDRS, "POST", "", cdr.to_json()):
            self.roaming.update(roaming.id, pushed="CDR")
            log.info("OCPI CDR %s to eMSP %s: settled in %s", roaming.id, peer.name, settle.tx_hash)

    async def _send(self, peer: Peer, module: ModuleID, method: str, path: str, body: dict) -> bool:
        base = peer.endpoint(module, InterfaceRole.RECEIVER)
        if base is None:
            return False
        url = f"{base.rstrip('/')}/{path}" if path else base
        try:
            await send_to(self.settings, peer, method, url, body)
            return True
        except OcpiError as error:
            log.warning(
                "OCPI %s %s to eMSP %s not delivered (again next round): %s", method, module.value, peer.name, error
            )
            return False
