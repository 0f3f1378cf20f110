"""Which of the CSMS's EVSEs can become chain stations, and as what: one :class:`EvseMapping` per EVSE,
with the charge point id it registers under, its connectors, its tariff converted
(:mod:`core_client.ocpi.tariffs`), or the reason it cannot be imported. Pure: no network, no chain.

One EVSE is one station (2.2.1: one EV at a time per EVSE); its connectors are the station's, in
order. The station's tariff is the one tariff that applies to app sessions at every connector (no
type, or REGULAR; valid now); connectors with different tariffs cannot share one chain tariff. The
charge point id is the EVSE's eMI3 ``evse_id`` when it is a valid id, else ``<location>.<evse uid>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core_client.config import check_charge_point_id
from core_client.ocpi.errors import TariffNotExpressible
from core_client.ocpi.mirror import ImportedStation
from core_client.ocpi.models import EVSE, Location
from core_client.ocpi.models import Tariff as OcpiTariff
from core_client.ocpi.models.base import ci
from core_client.ocpi.models.enums import Capability, Status, TariffType
from core_client.ocpi.tariffs import ChainTariff, convert
from core_client.ocpi.transport import Party


@dataclass(frozen=True)
class EvseMapping:
    """One EVSE of the CSMS and what it is (or would be) on chain."""

    party: Party
    location_id: str
    location_name: str | None
    evse_uid: str
    evse_id: str | None
    status: Status
    charge_point_id: str | None
    connector_ids: list[str]
    tariff: ChainTariff | None
    station_id: int | None  # the chain station it was imported as
    refusal: str | None  # why it cannot be imported

    @property
    def importable(self) -> bool:
        return self.refusal is None and self.station_id is None

    def names(self) -> set[str]:
        """What a user may call it: its uid, its evse_id, ``location/uid`` (case-insensitive)."""
        found = {ci(self.evse_uid), ci(f"{self.location_id}/{self.evse_uid}")}
        return found | ({ci(self.evse_id)} if self.evse_id else set())


def map_evses(
    locations: list[Location],
    tariffs: list[OcpiTariff],
    imported: list[ImportedStation],
    currency: str,
    decimals: int,
    now: datetime,
) -> list[EvseMapping]:
    """Every EVSE of ``locations`` mapped (EVSEs REMOVED included, with that reason)."""
    by_id = tariffs_by_id(tariffs)
    stations = {(s.party.key(), ci(s.location_id), ci(s.evse_uid)): s for s in imported}
    rows = []
    for location in locations:
        party = Party(location.country_code, location.party_id)
        for evse in location.evses or []:
            station = stations.get((party.key(), ci(location.id), ci(evse.uid)))
            tariff, refusal = _tariff(party, evse, by_id, currency, decimals, now)
            refusal = _evse_refusal(evse) or refusal
            cp_id = station.charge_point_id if station else charge_point_id(location, evse)
            if cp_id is None and refusal is None:
                refusal = f"no usable charge point id (evse_id {evse.evse_id!r}, uid {evse.uid!r})"
            rows.append(
                EvseMapping(
                    party=party,
                    location_id=location.id,
                    location_name=location.name,
                    evse_uid=evse.uid,
                    evse_id=evse.evse_id,
                    status=evse.status,
                    charge_point_id=cp_id,
                    connector_ids=[c.id for c in evse.connectors],
                    tariff=tariff,
                    station_id=station.station_id if station else None,
                    refusal=refusal,
                )
            )
    return rows


def charge_point_id(location: Location, evse: EVSE) -> str | None:
    """The id the EVSE registers under on chain: its evse_id, else ``<location id>.<evse uid>``; None when
    neither is a valid charge point id."""
    for candidate in (evse.evse_id, f"{location.id}.{evse.uid}"):
        try:
            if candidate:
                return check_charge_point_id(candidate)
        except ValueError:
            continue
    return None


def _evse_refusal(evse: EVSE) -> str | None:
    if evse.status == Status.REMOVED:
        return "the EVSE was removed"
    if evse.capabilities is not None and Capability.REMOTE_START_STOP_CAPABLE not in evse.capabilities:
        return "the EVSE cannot be started remotely (no REMOTE_START_STOP_CAPABLE)"
    return None


def _tariff(
    party: Party,
    evse: EVSE,
    by_id: dict[tuple[tuple[str, str], str], OcpiTariff],
    currency: str,
    decimals: int,
    now: datetime,
) -> tuple[ChainTariff | None, str | None]:
    """The EVSE's one applicable tariff converted, or (None, why not)."""
    tariff, refusal = choose_tariff(party, evse, by_id, now)
    if tariff is None:
        return None, refusal
    try:
        return convert(tariff, currency, decimals, now), None
    except TariffNotExpressible as refused:
        return None, str(refused)


def choose_tariff(
    party: Party, evse: EVSE, by_id: dict[tuple[tuple[str, str], str], OcpiTariff], now: datetime
) -> tuple[OcpiTariff | None, str | None]:
    """The one tariff that prices app sessions at every connector of ``evse`` (``by_id``: the CSMS's
    tariffs by (owner key, id)), or (None, why there is none)."""
    chosen: dict[str, OcpiTariff] = {}
    for connector in evse.connectors:
        if not connector.tariff_ids:
            return None, f"connector {connector.id} has no tariff"
        known = []
        for tariff_id in connector.tariff_ids:
            tariff = by_id.get((party.key(), ci(tariff_id)))
            if tariff is None:
                return None, f"tariff {tariff_id} of connector {connector.id} is not among the CSMS's tariffs"
            known.append(tariff)
        applicable = [t for t in known if _applies(t, now)]
        if len(applicable) != 1:
            ids = ", ".join(t.id for t in applicable) or "none"
            return None, f"connector {connector.id}: {len(applicable)} tariffs apply to app sessions ({ids})"
        chosen[connector.id] = applicable[0]
    if len({ci(t.id) for t in chosen.values()}) > 1:
        shown = ", ".join(f"{c}: {t.id}" for c, t in chosen.items())
        return None, f"the connectors have different tariffs ({shown}); a station has one"
    return next(iter(chosen.values())), None


def tariffs_by_id(tariffs: list[OcpiTariff]) -> dict[tuple[tuple[str, str], str], OcpiTariff]:
    """``tariffs`` by (owner key, id), as :func:`choose_tariff` looks them up."""
    return {(Party(t.country_code, t.party_id).key(), ci(t.id)): t for t in tariffs}


def _applies(tariff: OcpiTariff, now: datetime) -> bool:
    """Whether ``tariff`` prices an app session started ``now`` (its type and validity period)."""
    if tariff.type not in (None, TariffType.REGULAR):
        return False
    if tariff.start_date_time is not None and tariff.start_date_time > now:
        return False
    return tariff.end_date_time is None or tariff.end_date_time > now
