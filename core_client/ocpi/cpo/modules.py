"""Our Locations and Tariffs modules as the CPO (SENDER): paginated GETs (offset, limit, date_from,
date_to; Link, X-Total-Count, X-Limit) and single objects, for registered eMSPs (token C); and the live
EVSE status pushed to each eMSP's Locations RECEIVER as a PATCH."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Protocol

from starlette.routing import Route

from core_client.ocpi.cpo.catalog import OurStation, evse_status, evse_uid, location, location_id, tariff
from core_client.ocpi.cpo.handling import registered_only
from core_client.ocpi.cpo.outbound import send_to
from core_client.ocpi.cpo.peers import PeerStore
from core_client.ocpi.cpo.settings import CpoSettings
from core_client.ocpi.errors import OcpiError
from core_client.ocpi.handling import Call, Handler, Reply, not_found, page_reply
from core_client.ocpi.models import Location
from core_client.ocpi.models import Tariff as OcpiTariff
from core_client.ocpi.models.base import format_datetime
from core_client.ocpi.models.enums import InterfaceRole, ModuleID
from core_client.ocpi.transport import StatusCode, now

log = logging.getLogger(__name__)


class StationSource(Protocol):
    """What we publish: our stations (registry + live connector status + chain tariff), the token's
    decimals and the VAT rate our chain prices include (percent, None: none)."""

    def stations(self) -> list[OurStation]: ...

    def decimals(self) -> int: ...

    def vat_percent(self) -> Decimal | None: ...


class Catalog:
    """Our stations as OCPI objects (only those with a site in ``[ocpi_cpo.sites]``)."""

    def __init__(self, settings: CpoSettings, source: StationSource) -> None:
        self.settings = settings
        self.source = source

    def published(self) -> list[OurStation]:
        return [s for s in self.source.stations() if s.charge_point_id in self.settings.sites]

    def locations(self) -> list[Location]:
        found = [location(s, self.settings.sites[s.charge_point_id], self.settings.party) for s in self.published()]
        return sorted(found, key=lambda o: (o.last_updated, o.id))

    def tariffs(self) -> list[OcpiTariff]:
        decimals, vat = self.source.decimals(), self.source.vat_percent()
        found = [tariff(s, self.settings.party, self.settings.currency, decimals, vat) for s in self.published()]
        return sorted(found, key=lambda o: (o.last_updated, o.id))


class SenderModules:
    """The GET handlers of our Locations and Tariffs modules."""

    def __init__(self, settings: CpoSettings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog

    def routes(self, wrap: Any, prefix: str) -> list[Route]:
        def guarded(handler: Handler) -> Any:
            return wrap(registered_only(handler))

        location = f"{prefix}/locations/{{location_id}}"
        return [
            Route(f"{prefix}/locations", guarded(self.locations), methods=["GET"]),
            Route(location, guarded(self.location), methods=["GET"]),
            Route(f"{location}/{{evse_uid}}", guarded(self.location), methods=["GET"]),
            Route(f"{location}/{{evse_uid}}/{{connector_id}}", guarded(self.location), methods=["GET"]),
            Route(f"{prefix}/tariffs", guarded(self.tariffs), methods=["GET"]),
        ]

    async def locations(self, call: Call) -> Reply:
        return page_reply(call, self.catalog.locations(), self.settings, "locations")

    async def tariffs(self, call: Call) -> Reply:
        return page_reply(call, self.catalog.tariffs(), self.settings, "tariffs")

    async def location(self, call: Call) -> Reply:
        """One Location, EVSE or Connector; 404 with 2003 when we have none of that name."""
        wanted = call.segment("location_id")
        found = next((o for o in self.catalog.locations() if o.id.upper() == wanted.upper()), None)
        if found is None:
            raise not_found(f"Location {wanted}", StatusCode.UNKNOWN_LOCATION)
        part: Any = found
        for kind, segment in (("EVSE", "evse_uid"), ("Connector", "connector_id")):
            name = call.request.path_params.get(segment)
            if name is None:
                break
            part = part.evse(name) if kind == "EVSE" else part.connector(name)
            wanted += f"/{name}"
            if part is None:
                raise not_found(f"{kind} {wanted}", StatusCode.UNKNOWN_LOCATION)
        return Reply(part.to_json())


class StatusPushes:
    """Our Locations pushed to every registered eMSP with a Locations RECEIVER: a newly published station as a
    PUT of its Location, an EVSE's new status as a PATCH (an eMSP that refuses or is unreachable is logged,
    not retried: it reads the Location again with its next GET)."""

    def __init__(self, settings: CpoSettings, peers: PeerStore) -> None:
        self.settings = settings
        self.peers = peers

    async def location(self, station: OurStation) -> list[str]:
        """PUT the station's Location; the eMSPs that took it."""
        site = self.settings.sites.get(station.charge_point_id)
        if site is None:
            return []
        return await self._push("PUT", self._path(station), location(station, site, self.settings.party).to_json())

    async def evse_status(self, station: OurStation, connector: int, ocpp_status: str) -> list[str]:
        """PATCH the EVSE's new status; the eMSPs that took it."""
        if station.charge_point_id not in self.settings.sites:
            return []
        body = {"status": evse_status(ocpp_status).value, "last_updated": format_datetime(now())}
        path = f"{self._path(station)}/{evse_uid(station.charge_point_id, connector)}"
        return await self._push("PATCH", path, body)

    def _path(self, station: OurStation) -> str:
        us = self.settings.party
        return f"{us.country_code}/{us.party_id}/{location_id(station.station_id)}"

    async def _push(self, method: str, path: str, body: dict) -> list[str]:
        took = []
        for peer in self.peers.all():
            base = peer.endpoint(ModuleID.LOCATIONS, InterfaceRole.RECEIVER) if peer.registered else None
            if base is None:
                continue
            try:
                await send_to(self.settings, peer, method, f"{base.rstrip('/')}/{path}", body)
                took.append(peer.name)
            except OcpiError as error:
                log.warning("OCPI Location %s to eMSP %s not delivered: %s", method, peer.name, error)
        return took
