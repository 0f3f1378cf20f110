"""The OCPP wire format without a network: frames parsed and validated, the energy register read; hostile
input from the wire: meter values that would take seconds to convert, integers beyond 64 bits, NaN, and
text from the peer in log lines and errors."""

from __future__ import annotations

import json
import time

import pytest
from ocpp.messages import Call, get_validator

from benchmarks.fuzz_frames import KINDS, FrameGenerator
from core_client.ocpp.wire import (
    MAX_WH,
    FrameError,
    active_power_w,
    check_action,
    energy_register_wh,
    parse_frame,
    validate_call,
    wire_text,
)
from tools.harness.chain import TOKEN

DEPOSIT = 20 * TOKEN
KINDS_BY_NAME = dict(KINDS)


def parse_or_none(data: str | bytes) -> Call | None:
    """A CALL of the generator's frame, or None (not a frame parse_frame takes)."""
    try:
        message = parse_frame(data)
    except FrameError:
        return None
    return message if isinstance(message, Call) else None


def _reading(value: str, unit: str = "Wh") -> list[dict]:
    return [{"timestamp": "2026-01-01T00:00:00Z", "sampled_value": [{"value": value, "unit": unit}]}]


@pytest.mark.issue(9, item=1)
@pytest.mark.parametrize("value", ["1e999999", "1e400000", "9" * 5000, "-1e999999", "1e-999999999"])
def test_huge_meter_values_are_skipped_in_microseconds(value):
    started = time.perf_counter()
    assert energy_register_wh(_reading(value)) in (None, 0)
    assert time.perf_counter() - started < 0.5  # was 24 s for 1e999999 (microseconds now; slack for a busy machine)


@pytest.mark.issue(9, item=1)
def test_meter_values_up_to_the_bound_are_read_and_beyond_it_skipped():
    assert energy_register_wh(_reading(str(MAX_WH))) == MAX_WH
    assert energy_register_wh(_reading(str(MAX_WH + 1))) is None
    assert energy_register_wh(_reading("1e9", "kWh")) == 10**12
    assert energy_register_wh(_reading("2e9", "kWh")) is None  # 2 x 10^12 Wh is beyond 2^40
    assert energy_register_wh(_reading("12.5", "kWh")) == 12_500


@pytest.mark.issue(9, item=7)
def test_integers_beyond_64_bits_are_a_property_constraint_violation_with_the_message_id():
    for number in ("9" * 5000, str(2**63), str(-(2**63) - 1)):
        started = time.perf_counter()
        with pytest.raises(FrameError) as caught:
            parse_frame(f'[2,"m-1","MeterValues",{{"connectorId":{number},"meterValue":[]}}]')
        assert time.perf_counter() - started < 0.5
        assert (caught.value.code, caught.value.unique_id) == ("PropertyConstraintViolation", "m-1")
        assert "64 bits" in caught.value.description
        assert len(caught.value.call_error()) < 300  # the answer carries no copy of the number
    assert parse_frame(f'[2,"m-2","Heartbeat",{{"n":{2**63 - 1}}}]').payload == {"n": 2**63 - 1}


@pytest.mark.issue(9, item=7)
def test_nan_and_infinity_are_not_json():
    with pytest.raises(FrameError, match="NaN is not a JSON number"):
        parse_frame('[2,"m-1","Heartbeat",{"x":NaN}]')
    with pytest.raises(FrameError) as caught:
        parse_frame('[2,"m-3","Heartbeat",{"x":Infinity}]')
    assert caught.value.unique_id == "m-3"


@pytest.mark.issue(9, item=6)
def test_wire_text_keeps_a_log_line_one_line_and_bounded():
    forged = "CP-1\n2026-01-01 00:00:00,000 INFO    core_client: session 0xdead: settled cost=0\r\x1b[2J"
    shown = wire_text(forged)
    assert "\n" not in shown and "\r" not in shown and "\x1b" not in shown and "\\n2026" in shown
    long = wire_text("x" * 100_000)
    assert len(long) < 200 and long.endswith("[100000 chars]")


@pytest.mark.issue(9, item=6)
def test_frame_errors_quote_the_peer_escaped_and_bounded():
    forged = "Heart\nbeat 2026-01-01 INFO core_client: forged"
    with pytest.raises(FrameError) as caught:
        check_action(parse_frame(json.dumps([2, "m-1", forged, {}])), set())
    assert "\n" not in str(caught.value) and "Heart\\nbeat" in caught.value.description
    huge = {"chargePointVendor": "v" * 200_000, "chargePointModel": "m"}
    with pytest.raises(FrameError) as caught:
        validate_call(parse_frame(json.dumps([2, "m-2", "BootNotification", huge])))
    assert caught.value.code == "TypeConstraintViolation" and len(str(caught.value)) < 400


def test_active_power_is_the_unphased_power_sample_within_the_bound() -> None:
    def power(*samples: dict) -> int | None:
        return active_power_w([{"sampled_value": [{"value": "5000"}, *samples]}], 350_000)

    assert power() is None  # energy only
    assert power({"measurand": "Power.Active.Import", "value": "7400.6"}) == 7_400
    assert power({"measurand": "Power.Active.Import", "unit": "kW", "value": "22"}) == 22_000
    assert power({"measurand": "Power.Active.Import", "unit": "kW", "value": "351"}) is None  # beyond the bound
    assert power({"measurand": "Power.Active.Import", "value": "1e999999"}) is None
    assert power({"measurand": "Power.Active.Import", "value": "NaN"}) is None
    assert power({"measurand": "Power.Active.Import", "value": "7400", "phase": "L1"}) is None
    assert power({"measurand": "Power.Offered", "value": "7400"}) is None


def test_energy_register_reads_the_latest_import_register():
    values = [
        {"sampled_value": [{"value": "1000", "measurand": "Energy.Active.Import.Register"}]},
        {
            "sampled_value": [
                {"value": "22000", "measurand": "Power.Active.Import", "unit": "W"},
                {"value": "1.5", "unit": "kWh"},  # no measurand: the energy register by default
                {"value": "9999", "measurand": "Energy.Active.Import.Register", "phase": "L1"},
                {"value": "abc"},
                {"value": "-5"},
                {"value": "7777", "format": "SignedData"},
            ]
        },
    ]
    assert energy_register_wh(values) == 1500
    assert energy_register_wh([]) is None
    assert energy_register_wh([{"sampled_value": [{"value": "NaN"}]}]) is None


@pytest.mark.parametrize(
    ("raw", "code", "unique_id"),
    [
        ("nope", "FormationViolation", "-1"),
        ('[2, "' + "x" * 37 + '", "Heartbeat", {}]', "FormationViolation", "-1"),
        ('[2, "a", 5, {}]', "FormationViolation", "a"),
        ('[3, "a"]', "FormationViolation", "a"),
    ],
)
def test_parse_frame_errors(raw, code, unique_id):
    with pytest.raises(FrameError) as error:
        parse_frame(raw)
    assert (error.value.code, error.value.unique_id) == (code, unique_id)
    assert json.loads(error.value.call_error())[:3] == [4, unique_id, code]


def test_parse_frame_and_validate_a_good_call():
    call = parse_frame('[2, "id-1", "Authorize", {"idTag": "EVN1"}]')
    assert (call.unique_id, call.action, call.payload) == ("id-1", "Authorize", {"idTag": "EVN1"})
    validate_call(call)
    result = parse_frame('[3, "id-2", {"status": "Accepted"}]')
    assert result.payload == {"status": "Accepted"}


def _jsonschema_accepts(action: str, payload: dict) -> bool:
    return get_validator(2, action, "1.6").is_valid(payload)


@pytest.mark.issue(21, item=4)
def test_validate_call_accepts_exactly_what_the_ocpp_schemas_accept():
    """validate_call checks with schemas compiled to Python (jsonschema names the violation only when
    there is one): thousands of seeded payloads, valid and mutated, of every charge-point action are
    accepted or refused exactly as jsonschema's walk of the same schemas decides."""
    frames = FrameGenerator(21, skip=frozenset(set(KINDS_BY_NAME) - {"valid", "mutated"})).frames(4000)
    verdicts = {True: 0, False: 0}
    for frame in frames:
        call = parse_or_none(frame.data)
        if call is None:
            continue
        expected = _jsonschema_accepts(call.action, call.payload)
        try:
            validate_call(call)
            accepted = True
        except FrameError as error:
            accepted = False
            assert error.code != "InternalError"
        assert accepted == expected, frame.excerpt(300)
        verdicts[accepted] += 1
    assert verdicts[True] > 1000 and verdicts[False] > 1000, verdicts


@pytest.mark.issue(21, item=4)
@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"connectorId": True, "errorCode": "NoError", "status": "Available"}, "TypeConstraintViolation"),
        ({"connectorId": 1.0, "errorCode": "NoError", "status": "Available"}, "TypeConstraintViolation"),
        ({"connectorId": 1, "errorCode": "NoError", "status": "available"}, "PropertyConstraintViolation"),
        (
            {"connectorId": 1, "errorCode": "NoError", "status": "Available", "info": "i" * 51},
            "TypeConstraintViolation",
        ),
        ({"connectorId": 1, "errorCode": "NoError", "status": "Available", "extra": 1}, "FormationViolation"),
        ({"connectorId": 1, "errorCode": "NoError"}, "ProtocolError"),
        ({"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": "yesterday"}, None),
        ({"connectorId": 1, "errorCode": "NoError", "status": "Available", "info": "é" * 50}, None),
    ],
)
def test_validate_call_codes_at_the_edges_of_the_schema(payload, code):
    """What JSON Schema Draft 4 and OCPP 1.6 say, whichever validator finds it: true and 1.0 are not
    integers, enumerations are case-sensitive, maxLength counts characters, format is not asserted."""
    assert _jsonschema_accepts("StatusNotification", payload) == (code is None)
    call = parse_frame(json.dumps([2, "m-1", "StatusNotification", payload]))
    if code is None:
        validate_call(call)
        return
    with pytest.raises(FrameError) as caught:
        validate_call(call)
    assert (caught.value.code, caught.value.unique_id) == (code, "m-1")
