"""The chain tariffs of the stations imported from the CSMS, following what it pushes after the import:

- a Tariff (PUT): every station imported with it, or whose EVSE's connectors now name it;
- a Location (PUT or PATCH of it, of an EVSE or of a Connector) that changes the ``tariff_ids`` of an
  imported EVSE's connectors: that station.

Each such station's tariff is chosen again as the import chooses it (:func:`~core_client.ocpi.stations.
choose_tariff`: the one tariff that prices app sessions at all its connectors), from the Locations and
Tariffs we hold, converted exactly as the import converts (:mod:`core_client.ocpi.tariffs`), then
``setTariff`` (sessions requested from then on pay it; sessions already requested keep theirs) and the
station is recorded as converted from it. What the chain cannot express, a VAT rate other than the
operator profile's, or an EVSE with no one tariff (e.g. one the CSMS has not pushed yet: its push applies
it) is refused with a logged reason naming the part, as the import refuses it, and the station keeps its
tariff. A DELETE changes nothing on chain (a station always has a tariff): logged. Pushes apply one at a
time, in the order they came."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import datetime, timezone
from typing import Any, Protocol

from pydantic import BaseModel

from core_client.ocpi.errors import TariffNotExpressible
from core_client.ocpi.mirror import ImportedStation, Mirror
from core_client.ocpi.models import EVSE, Location
from core_client.ocpi.models import Tariff as OcpiTariff
from core_client.ocpi.models.base import ci
from core_client.ocpi.models.enums import ModuleID
from core_client.ocpi.stations import choose_tariff, tariffs_by_id
from core_client.ocpi.tariffs import convert, prices_text, tariff_name, vat_refusal
from core_client.ocpi.transport import Party
from ev_network.errors import EVNetworkError
from ev_network.pricing import Tariff

log = logging.getLogger("core_client.ocpi")


class StationTariffs(Protocol):
    """The chain as tariff pushes need it (the operator's escrow; blocking calls)."""

    def vat_rate_bp(self) -> int | None:
        """The VAT rate the operator published (operator profile), None if none."""

    def station_tariff(self, station_id: int) -> Tariff:
        """The station's tariff on chain now."""

    def set_tariff(self, station_id: int, tariff: Tariff) -> None:
        """Give the station a new tariff (mined when it returns)."""


class TariffPushes:
    """Pushed Tariffs and Locations onto the chain tariffs of the imported stations."""

    def __init__(self, mirror: Mirror, chain: StationTariffs, currency: str, decimals: int | None) -> None:
        self.mirror, self.chain, self.currency, self.decimals = mirror, chain, currency, decimals
        self._order = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    def pushed(self, tariff: OcpiTariff) -> None:
        """Apply ``tariff`` in the background (the CSMS's PUT is answered without waiting for the chain)."""
        self._spawn(self.apply(tariff))

    def location_pushed(self, location: Location) -> None:
        """Follow ``location`` as the CSMS now describes it, called before the mirror keeps it: the imported
        stations whose connectors' tariff_ids it changes get their tariff again, in the background."""
        party = Party(location.country_code, location.party_id)
        stations = self._stations_at(party, location.id)
        if not stations:
            return
        # each EVSE's connector tariffs before and after, by uid: one pass over each (a Location of a large site
        # is PATCHed once per EVSE status change), the stored one read as stored, not validated again
        stored = self.mirror.get(ModuleID.LOCATIONS, party, location.id) or {}
        before = {ci(e["uid"]): _connector_tariffs(_EvseTariffs.model_validate(e)) for e in stored.get("evses") or []}
        after = {ci(e.uid): _connector_tariffs(e) for e in location.evses or []}
        changed = [s for s in stations if after.get(ci(s.evse_uid), []) != before.get(ci(s.evse_uid), [])]
        if changed:
            self._spawn(self.follow(location, changed))

    def deleted(self, party: Party, tariff_id: str) -> None:
        for station in self.mirror.stations():
            if ci(station.tariff) == ci(f"{party}/{tariff_id}"):
                log.warning(
                    "OCPI tariff %s/%s deleted by the CSMS: station %d keeps its tariff on chain", party, tariff_id,
                    station.station_id,
                )  # fmt: skip

    async def apply(self, tariff: OcpiTariff) -> list[str]:
        """What became of each station ``tariff`` concerns (imported with it, or its EVSE names it), one line
        each (also logged)."""
        name = tariff_name(tariff)
        party = Party(tariff.country_code, tariff.party_id)
        async with self._order:
            tariffs = tariffs_by_id([*self._tariffs(), tariff])  # the pushed one, whether or not kept yet
            lines = []
            for station in self.mirror.stations():
                evse = self._evse(station)
                named = evse is not None and station.party.key() == party.key() and ci(tariff.id) in _names(evse)
                if ci(station.tariff) == ci(name) or named:
                    lines.append(await self._follow_one(station, evse, tariffs, f"OCPI tariff {name} pushed"))
            return lines

    async def follow(self, location: Location, stations: list[ImportedStation]) -> list[str]:
        """What became of ``stations`` of ``location`` after it was pushed, one line each (also logged)."""
        async with self._order:
            tariffs = tariffs_by_id(self._tariffs())
            where = f"OCPI location {location.country_code}/{location.party_id}/{location.id} pushed"
            return [await self._follow_one(s, location.evse(s.evse_uid), tariffs, where) for s in stations]

    async def _follow_one(
        self, station: ImportedStation, evse: EVSE | None, tariffs: dict[Any, OcpiTariff], cause: str
    ) -> str:
        """``station`` given the tariff its EVSE now has (without a Location held: the one it was imported with)."""
        now = datetime.now(timezone.utc)
        if evse is None:
            chosen, refusal = tariffs.get((station.party.key(), ci(station.tariff.split("/", 2)[2]))), None
        else:
            chosen, refusal = choose_tariff(station.party, evse, tariffs, now)
        where = f"{cause}: station {station.station_id} ({station.charge_point_id})"
        if chosen is None:
            return self._kept(where, refusal or f"its tariff {station.tariff} is no longer held")
        name = tariff_name(chosen)
        if self.decimals is None:
            return self._kept(where, "the token's decimals are unknown (the chain did not tell at start)")
        try:
            converted = convert(chosen, self.currency, self.decimals, now)
            refusal = vat_refusal(converted, await asyncio.to_thread(self.chain.vat_rate_bp))
            if refusal:
                return self._kept(where, f"tariff {name}: {refusal}")
            if await asyncio.to_thread(self.chain.station_tariff, station.station_id) == converted.tariff:
                line = f"{where}: its tariff on chain is that of {name} already"
            else:
                await asyncio.to_thread(self.chain.set_tariff, station.station_id, converted.tariff)
                line = f"{where}: tariff on chain now {prices_text(converted.tariff, self.decimals)} (tariff {name})"
        except TariffNotExpressible as refused:
            return self._kept(where, str(refused))
        except EVNetworkError as error:
            return self._kept(where, f"the chain did not take it: {error}")
        self.mirror.set_station_tariff(station.station_id, name)
        log.info("%s", line)
        return line

    def _kept(self, where: str, refusal: str) -> str:
        line = f"{where} keeps its tariff on chain: not applied: {refusal}"
        log.warning("%s", line)
        return line

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stations_at(self, party: Party, location_id: str) -> list[ImportedStation]:
        return [s for s in self.mirror.stations() if s.party.key() == party.key() and s.location_id == ci(location_id)]

    def _evse(self, station: ImportedStation) -> EVSE | None:
        stored = self.mirror.get(ModuleID.LOCATIONS, station.party, station.location_id)
        return None if stored is None else Location.model_validate(stored).evse(station.evse_uid)

    def _tariffs(self) -> list[OcpiTariff]:
        return [OcpiTariff.model_validate(t) for t in self.mirror.all(ModuleID.TARIFFS)]


class _ConnectorTariffs(BaseModel):
    """What :func:`_connector_tariffs` reads of a stored Connector."""

    id: str
    tariff_ids: list[str] | None = None


class _EvseTariffs(BaseModel):
    """What :func:`_connector_tariffs` reads of a stored EVSE (not the whole EVSE: that is checked on arrival)."""

    connectors: list[_ConnectorTariffs] = []


def _connector_tariffs(evse: EVSE | _EvseTariffs | None) -> list[tuple[str, list[str]]]:
    """Each connector of ``evse`` with the tariff ids it names (case-insensitive)."""
    return [(ci(c.id), [ci(t) for t in c.tariff_ids or []]) for c in (evse.connectors if evse else [])]


def _names(evse: EVSE) -> set[str]:
    """Every tariff id the connectors of ``evse`` name (case-insensitive)."""
    return {t for _, ids in _connector_tariffs(evse) for t in ids}
