"""A Location pushed by the CSMS is checked for connectors re-pointed to another tariff (TariffPushes): at a
site of many imported EVSEs, whose Location is PATCHed at each EVSE's status change, that check is one pass
over its EVSEs, not a search of the whole Location per station (it ran on the daemon's loop per PATCH)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core_client.ocpi.mirror import ImportedStation, Mirror
from core_client.ocpi.models import Location
from core_client.ocpi.models.enums import ModuleID
from core_client.ocpi.tariff_pushes import TariffPushes
from core_client.ocpi.transport import Party
from tools.harness.ocpi.objects import T0, connector, evse, location

CSMS = Party("NL", "TNM")
SITE = 100


async def test_a_status_push_at_a_large_site_reads_each_evse_once(tmp_path: Path, monkeypatch) -> None:
    mirror = Mirror(tmp_path / "mirror.sqlite")
    try:
        mirror.put(ModuleID.LOCATIONS, CSMS, "LOC-BIG", location("LOC-BIG", [evse(f"E{n}") for n in range(SITE)]), T0)
        for n in range(SITE):
            mirror.add_station(ImportedStation(n + 1, f"NL*TNM*E{n}", CSMS, "LOC-BIG", f"E{n}", ["1"], "NL/TNM/T1"))
        pushes = TariffPushes(mirror, None, "EUR", 18)  # type: ignore[arg-type]  # the chain: not reached here
        followed: list[list[int]] = []

        async def follow(_: Location, stations: list[ImportedStation]) -> None:  # (on chain: test_ocpi_daemon)
            followed.append([s.station_id for s in stations])

        monkeypatch.setattr(pushes, "follow", follow)
        searched: list[str] = []
        real = Location.evse
        monkeypatch.setattr(Location, "evse", lambda self, uid: searched.append(uid) or real(self, uid))

        status = [evse(f"E{n}", "CHARGING" if n == 7 else "AVAILABLE") for n in range(SITE)]
        pushes.location_pushed(Location.model_validate(location("LOC-BIG", status)))
        await asyncio.sleep(0)
        assert followed == [] and searched == []  # was: 2 searches of 100 EVSEs per station, 20,000 per push

        moved = [evse(f"E{n}", connectors=[connector(tariff_ids=["T2" if n == 7 else "T1"])]) for n in range(SITE)]
        pushes.location_pushed(Location.model_validate(location("LOC-BIG", moved)))
        await asyncio.sleep(0)
        assert followed == [[8]]  # the one re-pointed
    finally:
        mirror.close()
