"""The OCPI bridge inside the daemon: our endpoints served for the CSMS (``[ocpi]`` host:port), the
pulls that catch up on what it could not push, and its part of ``/health``.

Until a session bridge plugs in its own :class:`~core_client.ocpi.inbox.OcpiInbox`, the daemon uses
:class:`StationInbox`: EVSE statuses of imported stations become their connectors' public
availability, pushed tariffs (and Locations re-pointing their connectors to another tariff) their chain
tariffs (:mod:`core_client.ocpi.tariff_pushes`); everything else the CSMS sends is validated and kept
(recorded, never settled)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core_client.ocpi.client import OcpiClient
from core_client.ocpi.csms import Csms
from core_client.ocpi.errors import OcpiError
from core_client.ocpi.inbox import IssuedToken, OcpiInbox
from core_client.ocpi.mirror import Mirror, mirror_location
from core_client.ocpi.models import CDR, CommandResult, Location, Session, Token
from core_client.ocpi.models import Tariff as OcpiTariff
from core_client.ocpi.models.enums import CommandType, Status, TokenType
from core_client.ocpi.registration import RegistrationStore
from core_client.ocpi.server import OcpiServer
from core_client.ocpi.settings import OcpiSettings
from core_client.ocpi.sync import pull_cdrs
from core_client.ocpi.tariff_pushes import TariffPushes
from core_client.ocpi.tariffs import tariff_name
from core_client.ocpi.transport import Party
from ev_network.web.server import HttpServer

log = logging.getLogger("core_client.ocpi")

# an EVSE's OCPI status as the OCPP 1.6 connector status the public station list shows
AVAILABILITY = {
    Status.AVAILABLE: "Available",
    Status.BLOCKED: "Unavailable",
    Status.CHARGING: "Charging",
    Status.INOPERATIVE: "Unavailable",
    Status.OUTOFORDER: "Faulted",
    Status.PLANNED: "Unavailable",
    Status.REMOVED: "Unavailable",
    Status.RESERVED: "Reserved",
    Status.UNKNOWN: "Unknown",
}

StatusSink = Callable[[str, int, str], None]  # (charge point id, connector, OCPP status)


class StationInbox:
    """The daemon's inbox without a session bridge: availability of imported stations; the rest recorded
    (the receivers keep it in the mirror) and logged, nothing settled, no tokens issued."""

    def __init__(self, mirror: Mirror, set_status: StatusSink, tariff_pushes: TariffPushes | None = None) -> None:
        self.mirror = mirror
        self.set_status = set_status
        self.tariff_pushes = tariff_pushes  # pushed tariffs onto the imported stations' chain tariffs

    async def on_evse_status(self, party: Party, location_id: str, evse_uid: str, status: Status) -> None:
        station = self.mirror.station_of(party, location_id, evse_uid)
        if station is None:
            return
        for connector in range(1, len(station.connector_ids) + 1):
            self.set_status(station.charge_point_id, connector, AVAILABILITY[status])

    async def on_location(self, location: Location) -> None:
        log.debug("OCPI location %s/%s/%s", location.country_code, location.party_id, location.id)
        if self.tariff_pushes is not None:
            self.tariff_pushes.location_pushed(location)

    async def on_tariff(self, tariff: OcpiTariff) -> None:
        log.info("OCPI tariff %s pushed", tariff_name(tariff))
        if self.tariff_pushes is not None:
            self.tariff_pushes.pushed(tariff)

    async def on_tariff_deleted(self, party: Party, tariff_id: str) -> None:
        log.info("OCPI tariff %s/%s deleted by the CSMS", party, tariff_id)
        if self.tariff_pushes is not None:
            self.tariff_pushes.deleted(party, tariff_id)

    async def on_session(self, session: Session) -> None:
        log.info("OCPI session %s (%s) recorded: no session bridge to act on it", session.id, session.status.value)

    async def on_cdr(self, cdr: CDR) -> None:
        log.info("OCPI CDR %s recorded: no session bridge to settle it", cdr.id)

    async def on_command_result(self, command: CommandType, uid: str, result: CommandResult) -> None:
        log.info("OCPI %s result %s for %s: no session bridge waits for it", command.value, result.result.value, uid)

    async def tokens(self) -> list[Token]:
        return []

    async def token(self, uid: str, token_type: TokenType) -> IssuedToken | None:
        return None


@runtime_checkable
class Reporting(Protocol):
    """An inbox with a part of its own in /health (the session bridge)."""

    def health(self) -> dict[str, Any]: ...


class OcpiService:
    """Our OCPI endpoints in the daemon, its client to the CSMS, the pulls, and what ``/health`` says."""

    def __init__(
        self, settings: OcpiSettings, database: Path | str, inbox: Callable[[Mirror, Csms], OcpiInbox]
    ) -> None:
        self.settings = settings
        self.store = RegistrationStore(settings.registration_path(database))
        self.mirror = Mirror(mirror_location(database))
        self.client = OcpiClient(
            timeout_s=settings.request_timeout_s, encoding=settings.token_encoding, sender=settings.party
        )
        self.csms = Csms(self.client, self.store, settings)
        self.inbox = inbox(self.mirror, self.csms)
        self.server = OcpiServer(settings, self.store, self.mirror, self.inbox)
        self.http = HttpServer(self.server.app(), settings.host, settings.port)
        self.last_pull: str | None = None  # how the last CDR pull went

    async def start(self) -> None:
        """Serve our endpoints; OSError naming the address if they cannot listen."""
        await self.client.__aenter__()
        try:
            await self.http.start()
        except BaseException:
            await self.client.__aexit__(None, None, None)
            raise
        log.info("OCPI endpoints on %s/ (public %s)", self.http.url, self.settings.versions_endpoint)

    async def stop(self) -> None:
        await self.http.stop()
        await self.client.__aexit__(None, None, None)
        self.mirror.close()

    async def pull(self) -> None:
        """Pull the CDRs the CSMS did not push (when registered); how it went is kept for /health."""
        registration = self.store.load()
        if registration is None or not registration.registered:
            return
        try:
            report = await pull_cdrs(self.csms, self.server.receivers)
        except OcpiError as error:
            self.last_pull = f"failed: {error}"
            log.warning("OCPI CDR pull failed: %s", error)
            return
        for line in report:
            log.info("OCPI pull: %s", line)
        self.last_pull = f"{len(report)} CDR(s) taken or refused at {datetime.now(timezone.utc):%H:%M:%S} UTC"

    def health(self) -> dict[str, Any]:
        """``registered`` and with whom, why not (``ended``), a refusal of our token, stations imported."""
        try:
            registration = self.store.load()
        except OcpiError as error:
            return {"versions_url": self.settings.versions_url, "registered": False, "ended": str(error)}
        return {
            "versions_url": self.settings.versions_url,
            "registered": bool(registration and registration.registered),
            "csms_parties": [str(p) for p in registration.cpo_parties()] if registration else [],
            "ended": registration.ended if registration else "not registered (core-client ocpi register)",
            "token_refused": registration.refused if registration else None,
            "stations_imported": len(self.mirror.stations()),
            "last_cdr_pull": self.last_pull,
            **(self.inbox.health() if isinstance(self.inbox, Reporting) else {}),
        }
