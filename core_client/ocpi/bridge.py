"""What the ``core-client ocpi`` commands do, on the config's ``[ocpi]`` section and the chain:
register / update / unregister (the handshake, serving our endpoints meanwhile unless the daemon
already does), status, stations (the CSMS's EVSEs and what each maps to on chain) and import (EVSEs
registered as stations with their converted tariffs). Each returns the lines to print."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from core_client.ocpi.credentials import Handshake
from core_client.ocpi.csms import Csms
from core_client.ocpi.errors import OcpiError, OcpiRejected
from core_client.ocpi.inbox import RecordingInbox
from core_client.ocpi.mirror import ImportedStation, Mirror, mirror_location
from core_client.ocpi.models.enums import ModuleID
from core_client.ocpi.registration import Registration, RegistrationStore
from core_client.ocpi.server import OcpiServer
from core_client.ocpi.settings import OcpiSettings
from core_client.ocpi.stations import EvseMapping, map_evses
from core_client.ocpi.tariffs import prices_text, time_fee_note, vat_refusal
from core_client.ocpi.transport import Party, StatusCode
from ev_network.pricing import Tariff
from ev_network.web.server import HttpServer


class StationRegistry(Protocol):
    """The chain as the import needs it (the operator's escrow)."""

    def decimals(self) -> int: ...

    def vat_rate_bp(self) -> int | None:
        """The VAT rate the operator published (operator profile), None if none."""

    def add_station(self, charge_point_id: str, connectors: int, tariff: Tariff) -> int:
        """Register a station; its id."""


@dataclass
class Bridge:
    """The OCPI bridge of one Core Client: its ``[ocpi]`` settings and its database (the mirror is kept
    there, :func:`~core_client.ocpi.mirror.mirror_location`)."""

    settings: OcpiSettings
    database: Path | str  # the Core Client's: a SQLite file or a postgresql:// URL

    @property
    def store(self) -> RegistrationStore:
        return RegistrationStore(self.settings.registration_path(self.database))

    def mirror(self) -> Mirror:
        return Mirror(mirror_location(self.database))

    def handshake(self) -> Handshake:
        return Handshake(self.settings, self.store)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Our endpoints during a handshake (the CSMS calls them): served here unless something (the daemon)
        already listens on [ocpi] host:port. Yields who serves them."""
        mirror = self.mirror()
        server = HttpServer(
            OcpiServer(self.settings, self.store, mirror, RecordingInbox()).app(),
            self.settings.host,
            self.settings.port,
        )
        try:
            await server.start()
        except OSError as error:
            mirror.close()
            if _in_use(error):
                yield "served by the running daemon"
                return
            raise OcpiError(f"[ocpi] cannot serve our endpoints: {error}") from None
        try:
            yield f"served by this command on {self.settings.host}:{self.settings.port} during the handshake"
        finally:
            await server.stop()
            mirror.close()

    async def register(self) -> list[str]:
        async with self.serving() as serving:
            registration = await self._handshake(self.handshake().register)
        return self._registered("registered", registration, serving)

    async def update(self) -> list[str]:
        async with self.serving() as serving:
            registration = await self._handshake(self.handshake().update)
        return self._registered("credentials renewed", registration, serving)

    async def unregister(self) -> list[str]:
        return [await self.handshake().unregister()]

    async def _handshake(self, step: Callable[[], Awaitable[Registration]]) -> Registration:
        try:
            return await step()
        except OcpiRejected as refused:
            if refused.status_code != StatusCode.UNABLE_TO_USE_CLIENT_API:
                raise
            raise OcpiError(
                f"{refused}; the CSMS could not use our endpoints at {self.settings.public_url}: is [ocpi] public_url "
                "right and reachable from the CSMS?"
            ) from None

    def _registered(self, what: str, registration: Registration, serving: str) -> list[str]:
        parties = ", ".join(str(p) for p in registration.cpo_parties()) or "no CPO role"
        return [
            f"{what} with the CSMS at {registration.versions_url} as eMSP {self.settings.party} (OCPI 2.2.1)",
            f"the CSMS's parties: {parties}",
            f"our endpoints: {self.settings.versions_endpoint} ({serving})",
            f"tokens kept in {self.store.path} (mode 0600)",
        ]

    def status(self) -> list[str]:
        registration = self.store.load()
        if registration is None:
            return [f"not registered: `core-client ocpi register` connects to {self.settings.versions_url}"]
        if registration.ended:
            return [f"not registered: {registration.ended}"]
        if not registration.registered:
            return [f"registration with {registration.versions_url} under way (or interrupted: register again)"]
        modules = ", ".join(f"{e.identifier} ({e.role.value})" for e in registration.endpoints)
        mirror = self.mirror()
        try:
            imported = len(mirror.stations())
        finally:
            mirror.close()
        lines = [
            f"registered with {registration.versions_url} since {registration.registered_at:%Y-%m-%d %H:%M:%S} UTC",
            f"we are eMSP {self.settings.party}; the CSMS's parties: {', '.join(str(p) for p in registration.cpo_parties())}",
            f"the CSMS's modules: {modules}",
            f"our endpoints: {self.settings.versions_endpoint}",
            f"stations imported: {imported}",
        ]
        return lines + ([f"WARNING: {registration.refused}"] if registration.refused else [])

    async def evses(self, decimals: int) -> tuple[list[EvseMapping], list[str]]:
        """Every EVSE of the CSMS mapped (Locations and Tariffs pulled, all pages, and kept in the mirror), and
        the objects the CSMS sent that are not valid 2.2.1 (skipped)."""
        async with self.handshake().client() as client:
            csms = Csms(client, self.store, self.settings)
            locations, tariffs = await csms.locations(), await csms.tariffs()
        mirror = self.mirror()
        try:
            for module, pulled in ((ModuleID.LOCATIONS, locations.objects), (ModuleID.TARIFFS, tariffs.objects)):
                for item in pulled:  # kept, so that the CSMS's later PATCHes apply to them
                    data = item.to_json()
                    party = Party(item.country_code, item.party_id)
                    mirror.refresh(module, party, item.id, data, data["last_updated"])
            imported = mirror.stations()
        finally:
            mirror.close()
        now = datetime.now(timezone.utc)
        rows = map_evses(locations.objects, tariffs.objects, imported, self.settings.currency, decimals, now)
        return rows, locations.problems + tariffs.problems

    async def stations(self, decimals: int) -> list[str]:
        rows, problems = await self.evses(decimals)
        lines = [describe(row, decimals) for row in rows] or ["the CSMS has no EVSEs"]
        return lines + [f"skipped (not valid OCPI 2.2.1): {p}" for p in problems]

    async def import_evses(self, chain: StationRegistry, names: list[str], everything: bool) -> list[str]:
        """Register the EVSEs called ``names`` (uid, evse_id or location/uid), or all importable ones."""
        decimals = chain.decimals()
        rows, _ = await self.evses(decimals)
        wanted = [n.upper() for n in names]
        chosen = [r for r in rows if r.importable] if everything else [r for r in rows if r.names() & set(wanted)]
        unknown = [n for n in names if not any(n.upper() in r.names() for r in rows)]
        if unknown:
            raise OcpiError(f"no EVSE called {', '.join(unknown)} at the CSMS (`core-client ocpi stations` lists them)")
        vat = chain.vat_rate_bp()
        lines = []
        mirror = self.mirror()
        try:
            for row in chosen:
                lines.append(self._import_one(chain, mirror, row, vat, decimals))
        finally:
            mirror.close()
        return lines or ["nothing to import"]

    def _import_one(
        self, chain: StationRegistry, mirror: Mirror, row: EvseMapping, vat: int | None, decimals: int
    ) -> str:
        name = f"{row.location_id}/{row.evse_uid}"
        if row.station_id is not None:
            return f"{name}: already station {row.station_id}"
        if row.refusal is not None or row.tariff is None or row.charge_point_id is None:
            return f"{name}: not imported: {row.refusal}"
        refusal = vat_refusal(row.tariff, vat)
        if refusal:
            return f"{name}: not imported: {refusal}"
        station_id = chain.add_station(row.charge_point_id, len(row.connector_ids), row.tariff.tariff)
        tariff = row.tariff.source
        mirror.add_station(
            ImportedStation(
                station_id, row.charge_point_id, row.party, row.location_id, row.evse_uid, row.connector_ids, tariff
            )
        )
        return f"{name}: station {station_id} registered as {row.charge_point_id}, {describe_tariff(row, decimals)}"


def describe(row: EvseMapping, decimals: int) -> str:
    """One line per EVSE: where it is, its status, and what it is or would be on chain."""
    head = f"{row.location_id}/{row.evse_uid}  {row.evse_id or '-'}  {row.status.value}"
    if row.station_id is not None:
        return f"{head}  -> station {row.station_id} ({row.charge_point_id})"
    if row.refusal is not None:
        return f"{head}  -> cannot import: {row.refusal}"
    return f"{head}  -> would register as {row.charge_point_id}, {describe_tariff(row, decimals)}"


def describe_tariff(row: EvseMapping, decimals: int) -> str:
    assert row.tariff is not None
    t = row.tariff.tariff
    connectors = f"{len(row.connector_ids)} connector" + ("s" if len(row.connector_ids) != 1 else "")
    where = f"{row.tariff.vat_text}, tariff {row.tariff.source}"
    return f"{connectors}, {prices_text(t, decimals)} ({where}{time_fee_note(t)})"


def _in_use(error: OSError) -> bool:
    return error.errno == errno.EADDRINUSE or "address already in use" in str(error).lower()
