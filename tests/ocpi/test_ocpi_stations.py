"""EVSEs -> chain stations: the charge point id, connectors, the one applicable tariff converted, or the
reason an EVSE cannot be imported."""

from __future__ import annotations

from datetime import datetime, timezone

from core_client.ocpi.mirror import ImportedStation, Mirror
from core_client.ocpi.models import Location
from core_client.ocpi.models import Tariff as OcpiTariff
from core_client.ocpi.stations import map_evses
from core_client.ocpi.transport import Party
from ev_network.pricing import Tariff
from tools.harness.ocpi import objects

NOW = datetime(2026, 12, 6, 12, tzinfo=timezone.utc)
E6 = 10**6


def mapped(locations: list[dict], tariffs: list[dict], imported: list[ImportedStation] | None = None):
    rows = map_evses(
        [Location.model_validate(loc) for loc in locations],
        [OcpiTariff.model_validate(t) for t in tariffs],
        imported or [],
        "EUR",
        6,
        NOW,
    )
    return {row.evse_uid: row for row in rows}


def test_an_evse_with_an_expressible_tariff_maps_to_a_station() -> None:
    evse = objects.evse("E1", connectors=[objects.connector("1"), objects.connector("2")])
    row = mapped([objects.location(evses=[evse])], [objects.tariff("T1")])["E1"]
    assert row.importable and row.refusal is None and row.station_id is None
    assert row.charge_point_id == "NL*TNM*EE1" and row.connector_ids == ["1", "2"]
    assert row.tariff.tariff == Tariff(price_per_kwh=302500, session_fee=605000) and row.tariff.vat_rate_bp == 2100
    assert row.names() >= {"E1", "LOC1/E1", "NL*TNM*EE1"}


def test_refusals_name_the_reason() -> None:
    evses = [
        objects.evse("PARK", connectors=[objects.connector("1", ["T-PARK"])]),
        objects.evse("GONE", status="REMOVED"),
        objects.evse("LOCAL") | {"capabilities": ["RFID_READER"]},
        objects.evse("MIXED", connectors=[objects.connector("1", ["T1"]), objects.connector("2", ["T2"])]),
        objects.evse("NONE", connectors=[objects.connector("1", [])]),
        objects.evse("LOST", connectors=[objects.connector("1", ["T404"])]),
        objects.evse("TWO", connectors=[objects.connector("1", ["T1", "T2"])]),
        objects.evse("FAST", connectors=[objects.connector("1", ["T1", "T-FAST"])]),  # only T1 applies to app sessions
    ]
    tariffs = [
        objects.tariff("T1"),
        objects.tariff("T2", objects.price("ENERGY", "0.40")),
        objects.tariff("T-PARK", objects.price("ENERGY", "0.25"), objects.price("PARKING_TIME", "2")),
        objects.tariff("T-FAST", objects.price("ENERGY", "0.60"), type="PROFILE_FAST"),
    ]
    rows = mapped([objects.location(evses=evses)], tariffs)
    assert "element 1: PARKING_TIME" in rows["PARK"].refusal and rows["PARK"].tariff is None
    assert rows["GONE"].refusal == "the EVSE was removed"
    assert "REMOTE_START_STOP_CAPABLE" in rows["LOCAL"].refusal
    assert rows["MIXED"].refusal == "the connectors have different tariffs (1: T1, 2: T2); a station has one"
    assert rows["NONE"].refusal == "connector 1 has no tariff"
    assert rows["LOST"].refusal == "tariff T404 of connector 1 is not among the CSMS's tariffs"
    assert rows["TWO"].refusal == "connector 1: 2 tariffs apply to app sessions (T1, T2)"
    assert rows["FAST"].importable
    assert not any(row.importable for uid, row in rows.items() if uid != "FAST")


def test_charge_point_id_falls_back_to_location_and_uid() -> None:
    evse = objects.evse("E 1") | {"evse_id": None}
    assert mapped([objects.location(evses=[evse])], [objects.tariff("T1")])["E 1"].refusal.startswith("no usable")
    evse = objects.evse("E2") | {"evse_id": "has/slash"}
    assert mapped([objects.location(evses=[evse])], [objects.tariff("T1")])["E2"].charge_point_id == "LOC1.E2"


def test_imported_evses_show_their_station(tmp_path) -> None:
    mirror = Mirror(tmp_path / "m.sqlite")
    mirror.add_station(ImportedStation(7, "NL*TNM*EE1", Party("nl", "tnm"), "loc1", "e1", ["1"], "NL/TNM/T1"))
    row = mapped([objects.location()], [objects.tariff("T1")], mirror.stations())["E1"]
    assert row.station_id == 7 and not row.importable and row.charge_point_id == "NL*TNM*EE1"
    assert mirror.station_of(Party("NL", "TNM"), "LOC1", "E1").station_id == 7
