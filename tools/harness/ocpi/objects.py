"""OCPI 2.2.1 objects for the tests, written from the specification's property tables (not taken
from any implementation). Each function returns a fresh dict to modify."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

T0 = "2026-12-06T10:00:00Z"


def connector(connector_id: str = "1", tariff_ids: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": connector_id,
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 32,
        "tariff_ids": tariff_ids if tariff_ids is not None else ["T1"],
        "last_updated": T0,
    }


def evse(uid: str = "E1", status: str = "AVAILABLE", connectors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "uid": uid,
        "evse_id": f"NL*TNM*E{uid}",
        "status": status,
        "capabilities": ["REMOTE_START_STOP_CAPABLE", "RFID_READER"],
        "connectors": connectors if connectors is not None else [connector()],
        "last_updated": T0,
    }


def location(location_id: str = "LOC1", evses: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "TNM",
        "id": location_id,
        "publish": True,
        "name": "Gent Zuid",
        "address": "F.Rooseveltlaan 3A",
        "city": "Gent",
        "postal_code": "9000",
        "country": "BEL",
        "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
        "evses": evses if evses is not None else [evse()],
        "time_zone": "Europe/Brussels",
        "last_updated": T0,
    }


def tariff(tariff_id: str = "T1", *components: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A tariff with one element holding ``components`` (default: 0.25/kWh + 0.50 flat, 21 % VAT)."""
    if not components:
        components = (price("ENERGY", "0.25"), price("FLAT", "0.50"))
    return {
        "country_code": "NL",
        "party_id": "TNM",
        "id": tariff_id,
        "currency": "EUR",
        "elements": [{"price_components": list(components)}],
        "last_updated": T0,
        **fields,
    }


def price(dimension: str, amount: str, vat: str | None = "21", step_size: int = 1) -> dict[str, Any]:
    component: dict[str, Any] = {"type": dimension, "price": Decimal(amount), "step_size": step_size}
    if vat is not None:
        component["vat"] = Decimal(vat)
    return component


def cdr_token(uid: str = "TOK1") -> dict[str, Any]:
    return {"country_code": "DE", "party_id": "EVN", "uid": uid, "type": "APP_USER", "contract_id": "DE-EVN-C1"}


def session(session_id: str = "S1", status: str = "ACTIVE", kwh: float = 0.0) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "TNM",
        "id": session_id,
        "start_date_time": T0,
        "kwh": kwh,
        "cdr_token": cdr_token(),
        "auth_method": "COMMAND",
        "location_id": "LOC1",
        "evse_uid": "E1",
        "connector_id": "1",
        "currency": "EUR",
        "status": status,
        "last_updated": T0,
    }


def cdr(cdr_id: str = "C1", session_id: str = "S1") -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "TNM",
        "id": cdr_id,
        "start_date_time": T0,
        "end_date_time": "2026-12-06T11:00:00Z",
        "session_id": session_id,
        "cdr_token": cdr_token(),
        "auth_method": "COMMAND",
        "cdr_location": {
            "id": "LOC1",
            "address": "F.Rooseveltlaan 3A",
            "city": "Gent",
            "country": "BEL",
            "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
            "evse_uid": "E1",
            "evse_id": "NL*TNM*EE1",
            "connector_id": "1",
            "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET",
            "connector_power_type": "AC_3_PHASE",
        },
        "currency": "EUR",
        "charging_periods": [{"start_date_time": T0, "dimensions": [{"type": "ENERGY", "volume": 12.5}]}],
        "total_cost": {"excl_vat": 3.625, "incl_vat": 4.38625},
        "total_energy": 12.5,
        "total_time": 1,
        "last_updated": "2026-12-06T11:00:05Z",
    }


def token(uid: str = "TOK1") -> dict[str, Any]:
    return {
        **cdr_token(uid),
        "issuer": "EV Network",
        "valid": True,
        "whitelist": "NEVER",
        "last_updated": T0,
    }
