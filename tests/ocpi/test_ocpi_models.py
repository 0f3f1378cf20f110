"""The OCPI 2.2.1 models check what the specification's tables say: required properties, lengths,
enums, the DateTime format; and keep what they do not know."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from core_client.ocpi import models as m
from core_client.ocpi.models.enums import InterfaceRole, ModuleID
from core_client.ocpi.transport import loads
from tools.harness.ocpi import objects


def test_location_round_trip_keeps_values_and_unknown_properties() -> None:
    raw = objects.location()
    raw["x_custom"] = {"anything": 1}
    location = m.Location.model_validate(raw)
    assert location.evses[0].connectors[0].max_amperage == 32
    assert location.last_updated == datetime(2026, 12, 6, 10, tzinfo=timezone.utc)
    out = location.to_json()
    assert out["x_custom"] == {"anything": 1}
    assert out["last_updated"] == "2026-12-06T10:00:00Z"
    assert out["evses"][0]["connectors"][0]["standard"] == "IEC_62196_T2"
    assert "state" not in out  # absent optional properties stay absent


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2015-06-29T20:39:09Z", datetime(2015, 6, 29, 20, 39, 9, tzinfo=timezone.utc)),
        ("2015-06-29T20:39:09", datetime(2015, 6, 29, 20, 39, 9, tzinfo=timezone.utc)),  # no designator: UTC
        ("2016-12-29T17:45:09.2Z", datetime(2016, 12, 29, 17, 45, 9, 200000, tzinfo=timezone.utc)),
        ("2018-01-01T01:08:01.123", datetime(2018, 1, 1, 1, 8, 1, 123000, tzinfo=timezone.utc)),
    ],
)
def test_datetime_forms_of_the_specification_are_accepted(text: str, expected: datetime) -> None:
    assert m.parse_datetime(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2015-06-29T20:39:09+00:00",
        "2015-06-29 20:39:09Z",
        "2015-06-29",
        "2015-13-29T20:39:09Z",
        "yesterday",
        1435610349,
    ],
)
def test_other_datetime_forms_are_refused(text: object) -> None:
    raw = objects.session()
    raw["last_updated"] = text
    with pytest.raises(ValidationError, match="last_updated"):
        m.Session.model_validate(raw)


def test_datetime_is_written_in_utc_with_z() -> None:
    assert m.format_datetime(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)) == "2026-01-02T03:04:05.678Z"


@pytest.mark.parametrize(
    "path, value, field",
    [
        (("id",), "L" * 37, "id"),  # CiString(36)
        (("address",), "a" * 46, "address"),  # string(45)
        (("city",), "Gent\nZuid", "city"),  # no control characters
        (("id",), "LOC-é", "id"),  # CiString: printable ASCII only
        (("country_code",), "NLD", "country_code"),
        (("publish",), "true", "publish"),  # a JSON boolean, not a string
        (("coordinates", "latitude"), "51.04", "coordinates.latitude"),  # at least 5 decimals
        (("evses", 0, "status"), "BROKEN", "evses.0.status"),  # an enum value of the table only
        (("evses", 0, "status"), "available", "evses.0.status"),  # enums are case-sensitive
        (("evses", 0, "connectors"), [], "evses.0.connectors"),  # cardinality +
        (("evses", 0, "connectors", 0, "max_voltage"), "230", "evses.0.connectors.0.max_voltage"),
    ],
)
def test_location_values_outside_the_tables_are_refused(path: tuple, value: object, field: str) -> None:
    raw = objects.location()
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError) as refused:
        m.Location.model_validate(raw)
    assert field in str(refused.value)


@pytest.mark.parametrize("missing", ["cdr_token", "cdr_location", "total_cost", "charging_periods", "last_updated"])
def test_cdr_without_a_required_property_is_refused(missing: str) -> None:
    raw = objects.cdr()
    del raw[missing]
    with pytest.raises(ValidationError, match=missing):
        m.CDR.model_validate(raw)


def test_numbers_stay_exact_and_strings_are_not_numbers() -> None:
    cdr = m.CDR.model_validate(
        loads(b'{"total_energy": 12.345}') | {k: v for k, v in objects.cdr().items() if k != "total_energy"}
    )
    assert cdr.total_energy == Decimal("12.345")
    session = m.Session.model_validate(loads(m.Session.model_validate(objects.session(kwh=0.1)).model_dump_json()))
    assert session.kwh == Decimal("0.1")
    with pytest.raises(ValidationError, match="kwh"):
        m.Session.model_validate({**objects.session(), "kwh": "5"})
    with pytest.raises(ValidationError, match="kwh"):
        m.Session.model_validate({**objects.session(), "kwh": True})


def test_credit_cdr_must_name_the_cdr_it_credits() -> None:
    with pytest.raises(ValidationError, match="credit_reference_id"):
        m.CDR.model_validate({**objects.cdr(), "credit": True})


def test_credentials_token_is_masked_in_repr_and_written_in_json() -> None:
    raw = {
        "token": "s3cret-token",
        "url": "https://csms.example.com/ocpi/versions",
        "roles": [{"role": "CPO", "party_id": "TNM", "country_code": "NL", "business_details": {"name": "TNM"}}],
    }
    credentials = m.Credentials.model_validate(raw)
    assert "s3cret" not in repr(credentials) and "s3cret" not in str(credentials)
    assert credentials.to_json()["token"] == "s3cret-token"
    with pytest.raises(ValidationError, match="token"):
        m.Credentials.model_validate({**raw, "token": "has space"})
    with pytest.raises(ValidationError, match="unique"):
        m.Credentials.model_validate({**raw, "roles": raw["roles"] * 2})


def test_start_session_connector_needs_its_evse() -> None:
    raw = {"response_url": "https://emsp.example.com/r/1", "token": objects.token(), "location_id": "LOC1"}
    assert m.StartSession.model_validate(raw).evse_uid is None
    with pytest.raises(ValidationError, match="evse_uid"):
        m.StartSession.model_validate({**raw, "connector_id": "1"})


def test_version_details_finds_an_endpoint_by_module_and_role() -> None:
    details = m.VersionDetails.model_validate(
        {
            "version": "2.2.1",
            "endpoints": [
                {"identifier": "credentials", "role": "SENDER", "url": "https://c/credentials"},
                {"identifier": "locations", "role": "SENDER", "url": "https://c/locations"},
                {"identifier": "nltnm-custom", "role": "SENDER", "url": "https://c/custom"},  # custom modules allowed
            ],
        }
    )
    assert details.endpoint(ModuleID.LOCATIONS, InterfaceRole.SENDER) == "https://c/locations"
    assert details.endpoint(ModuleID.LOCATIONS, InterfaceRole.RECEIVER) is None
    assert details.endpoint(ModuleID.CREDENTIALS, None) == "https://c/credentials"
