"""The Session and CDR we push to a roaming eMSP, built from our session record (pure, no network): the
settlement transaction in the CDR's remark, costs gross and net of VAT, the meter's OCMF records as
signed_data when it signed."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from decimal import Decimal

from core_client.ocpi.cpo.roaming import RoamingSession
from core_client.ocpi.cpo.session_objects import Money, cdr_object, session_object
from core_client.ocpi.models import CdrToken
from core_client.ocpi.transport import Party
from core_client.sessions.machine import SessionRecord, State
from core_client.sessions.metering import BEGIN, END
from ev_network.pricing import Tariff
from tools.harness.ocpi.our_cpo import site

US = Party("DE", "EVN")
AT = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)
ROAMING = RoamingSession(
    id="abc123",
    emsp="ems",
    token=CdrToken(country_code="NL", party_id="EMS", uid="APP-0001", type="APP_USER", contract_id="NL-EMS-1"),
    location_id="ST-7",
    evse_uid="CP-7-1",
    connector_id="1",
    charge_point_id="CP-7",
    connector=1,
    mandate_id=3,
    requested_at=AT,
    transaction_id=12,
)


def record(**changes) -> SessionRecord:
    start = AT.timestamp() + 5
    values = dict(
        session_id=99, station_id=7, charge_point_id="CP-7", connector=1, driver="0xE", deposit=20_000_000,
        tariff=Tariff(350_000, 500_000), state=State.SETTLED, transaction_id=12, meter_start=5000,
        meter_last=6400, started_at=start, meter_stop=7100, stopped_at=start + 1800, cost=1_235_000,
    )  # fmt: skip
    return SessionRecord(**{**values, **changes})


def test_the_session_is_active_until_the_meter_stops_then_completed():
    active = session_object(ROAMING, record(meter_stop=None, stopped_at=None), US, "EUR", AT)
    assert (active.status.value, active.kwh, active.end_date_time) == ("ACTIVE", Decimal("1.4"), None)
    assert active.start_date_time == datetime(2026, 12, 6, 10, 0, 5, tzinfo=timezone.utc)
    done = session_object(ROAMING, record(), US, "EUR", AT)
    assert (done.status.value, done.kwh) == ("COMPLETED", Decimal("2.1"))
    assert done.end_date_time == datetime(2026, 12, 6, 10, 30, 5, tzinfo=timezone.utc)
    waiting = session_object(ROAMING, None, US, "EUR", AT)  # the open not mined yet
    assert (waiting.kwh, waiting.start_date_time) == (0, AT)


def test_the_cdr_names_its_settlement_and_carries_the_signed_records():
    begin = 'OCMF|{"FV":"1.0","RD":[{"RV":5.0}]}|{"SD":"3045"}'
    end = 'OCMF|{"FV":"1.0","RD":[{"RV":7.1}]}|{"SD":"3046"}'
    tx = "0x" + "ab" * 32
    money = Money("EUR", 6, Decimal(19))
    cdr = cdr_object(ROAMING, record(), tx, site(7), 7, US, money, {BEGIN: begin, END: end}, AT)
    assert cdr.remark == f"settled on chain in transaction {tx}" and len(cdr.remark) <= 255
    assert (cdr.total_cost.incl_vat, cdr.total_cost.excl_vat) == (Decimal("1.235"), Decimal("1.0378"))
    assert (cdr.total_energy, cdr.total_time, cdr.session_id) == (Decimal("2.1"), Decimal("0.5"), "abc123")
    assert cdr.cdr_location.evse_id == "DE*EVN*E7*1" and cdr.cdr_location.address == "Hauptstrasse 7"
    signed = cdr.signed_data
    assert signed is not None and signed.encoding_method == "OCMF"
    assert [(v.nature, base64.b64decode(v.signed_data).decode()) for v in signed.signed_values] == [
        ("Start", begin),
        ("End", end),
    ]
    assert signed.signed_values[0].plain_data == '{"FV":"1.0","RD":[{"RV":5.0}]}'
    unsigned = cdr_object(ROAMING, record(), tx, site(7), 7, US, Money("EUR", 6, None), {}, AT)
    assert unsigned.signed_data is None and unsigned.total_cost.excl_vat == Decimal("1.235")
