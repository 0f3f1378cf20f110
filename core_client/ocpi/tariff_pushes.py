"""A Tariff the CSMS pushes (PUT) after an import, applied to the chain tariff of every station imported
with it: converted exactly as the import converts (:mod:`core_client.ocpi.tariffs`), then ``setTariff``
(sessions requested from then on pay it; sessions already requested keep theirs). What the chain cannot
express, or a VAT rate other than the operator profile's, is refused with a logged reason naming the
part, as the import refuses it, and the station keeps its tariff. A DELETE changes nothing on chain (a
station always has a tariff): logged. Pushes apply one at a time, in the order they came."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Protocol

from core_client.ocpi.errors import TariffNotExpressible
from core_client.ocpi.mirror import ImportedStation, Mirror
from core_client.ocpi.models import Tariff as OcpiTariff
from core_client.ocpi.models.base import ci
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
    """Pushed tariffs onto the chain tariffs of the stations imported with them."""

    def __init__(self, mirror: Mirror, chain: StationTariffs, currency: str, decimals: int | None) -> None:
        self.mirror, self.chain, self.currency, self.decimals = mirror, chain, currency, decimals
        self._order = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    def pushed(self, tariff: OcpiTariff) -> None:
        """Apply ``tariff`` in the background (the CSMS's PUT is answered without waiting for the chain)."""
        task = asyncio.get_running_loop().create_task(self.apply(tariff))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def deleted(self, party: Party, tariff_id: str) -> None:
        for station in self._stations(f"{party}/{tariff_id}"):
            log.warning(
                "OCPI tariff %s/%s deleted by the CSMS: station %d keeps its tariff on chain", party, tariff_id,
                station.station_id,
            )  # fmt: skip

    async def apply(self, tariff: OcpiTariff) -> list[str]:
        """What became of ``tariff`` at each station imported with it, one line each (also logged)."""
        name = tariff_name(tariff)
        async with self._order:
            stations = self._stations(name)
            if not stations:
                return []
            try:
                converted, refusal = await self._convert(tariff)
            except EVNetworkError as error:
                converted, refusal = None, f"the chain did not answer: {error}"
            return [await self._apply_one(station, name, converted, refusal) for station in stations]

    async def _convert(self, tariff: OcpiTariff) -> tuple[Tariff | None, str | None]:
        if self.decimals is None:
            return None, "the token's decimals are unknown (the chain did not tell at start)"
        try:
            converted = convert(tariff, self.currency, self.decimals, datetime.now(timezone.utc))
        except TariffNotExpressible as refused:
            return None, str(refused)
        refusal = vat_refusal(converted, await asyncio.to_thread(self.chain.vat_rate_bp))
        return (None, refusal) if refusal else (converted.tariff, None)

    async def _apply_one(
        self, station: ImportedStation, name: str, converted: Tariff | None, refusal: str | None
    ) -> str:
        where = f"OCPI tariff {name} pushed: station {station.station_id} ({station.charge_point_id})"
        if converted is None:
            line = f"{where} keeps its tariff on chain: not applied: {refusal}"
            log.warning("%s", line)
            return line
        try:
            if await asyncio.to_thread(self.chain.station_tariff, station.station_id) == converted:
                line = f"{where}: its tariff on chain is this one already"
            else:
                await asyncio.to_thread(self.chain.set_tariff, station.station_id, converted)
                line = f"{where}: tariff on chain now {prices_text(converted, self.decimals or 0)}"
        except EVNetworkError as error:
            line = f"{where} keeps its tariff on chain: setTariff failed: {error}"
            log.warning("%s", line)
            return line
        log.info("%s", line)
        return line

    def _stations(self, name: str) -> list[ImportedStation]:
        return [s for s in self.mirror.stations() if ci(s.tariff) == ci(name)]
