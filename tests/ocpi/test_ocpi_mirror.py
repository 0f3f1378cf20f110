"""The OCPI mirror (what the CSMS pushed, the stations imported, sessions as our transactions) on both
storage engines: a SQLite file beside a SQLite database, or tables in the Core Client's PostgreSQL
database; it survives being opened again."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from core_client.ocpi.mirror import ImportedStation, Mirror, mirror_location
from core_client.ocpi.models.enums import ModuleID
from core_client.ocpi.transport import Party

CSMS = Party("DE", "EVP")


def test_the_mirror_keeps_objects_stations_and_transactions_on_either_engine(db_location: Path | str) -> None:
    location = mirror_location(db_location)
    assert location == db_location if isinstance(db_location, str) else location.name == "cc.sqlite.ocpi.sqlite"
    mirror = Mirror(location)
    try:
        old, new = "2026-12-06T10:00:00Z", "2026-12-06T11:00:00Z"
        assert mirror.put(ModuleID.TARIFFS, CSMS, "t-1", {"id": "T-1", "v": 1}, new) is True
        assert mirror.refresh(ModuleID.TARIFFS, CSMS, "T-1", {"id": "T-1", "v": 0}, old) is False  # older: kept
        assert mirror.get(ModuleID.TARIFFS, Party("de", "evp"), "T-1") == {"id": "T-1", "v": 1}
        assert mirror.add(ModuleID.CDRS, CSMS, "CDR-1", {"id": "CDR-1"}, new) is True
        assert mirror.add(ModuleID.CDRS, CSMS, "CDR-1", {"id": "CDR-1", "again": True}, new) is False
        mirror.link_transaction(CSMS, "S-1", 42)
        mirror.set_cursor("cdrs", datetime(2026, 12, 6, 11, tzinfo=timezone.utc))
        mirror.add_station(ImportedStation(7, "DE*EVP*E0002", CSMS, "LOC-1", "EVSE-2", ["1"], "DE/EVP/T-ENERGY"))
    finally:
        mirror.close()
    again = Mirror(location)
    try:
        assert [o["id"] for o in again.all(ModuleID.TARIFFS)] == ["T-1"] and again.delete(ModuleID.TARIFFS, CSMS, "T-1")
        assert again.get(ModuleID.CDRS, CSMS, "cdr-1") == {"id": "CDR-1"}
        assert again.transaction_of(CSMS, "s-1") == 42 and again.session_of(42) == (CSMS, "S-1")
        assert again.cursor("cdrs") == datetime(2026, 12, 6, 11, tzinfo=timezone.utc)
        [station] = again.stations()
        assert station.station_id == 7 and station.connector_ids == ["1"]
        assert again.station_of(Party("de", "evp"), "loc-1", "evse-2") == station
    finally:
        again.close()


def test_a_station_is_read_by_its_key_not_among_all_the_imported_ones(db_location: Path | str, monkeypatch) -> None:
    """Each Session and EVSE status push asks which station its EVSE is: at a site of 100 EVSEs that read and
    decoded all 100 imported stations per push (on the daemon's loop); now one row, by key."""
    mirror = Mirror(mirror_location(db_location))
    try:
        for n in range(1, 101):
            mirror.add_station(ImportedStation(n, f"DE*EVP*B{n}", CSMS, "LOC-BIG", f"EVSE-{n}", ["1"], "DE/EVP/T-1"))
        mirror.add_station(ImportedStation(101, "DE*EVP*C1", CSMS, "LOC-OTHER", "EVSE-1", ["1"], "DE/EVP/T-1"))
        rows: list[int] = []
        run = mirror._db._run
        monkeypatch.setattr(mirror._db, "_run", lambda *a, **k: rows.append(len(found := run(*a, **k))) or found)
        station = mirror.station_of(Party("de", "evp"), "loc-big", "evse-42")  # CiStrings
        assert station is not None and station.charge_point_id == "DE*EVP*B42"
        assert rows == [1]
        assert mirror.station_of(CSMS, "LOC-BIG", "EVSE-101") is None
        assert [s.station_id for s in mirror.stations_at(CSMS, "loc-big")] == list(range(1, 101))
    finally:
        mirror.close()
