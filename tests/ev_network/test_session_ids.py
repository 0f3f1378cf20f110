"""Session ids (ev_network.session_ids): packing, the text forms, parsing. Pure, no chain."""

from __future__ import annotations

import pytest

from ev_network.session_ids import (
    driver_of,
    hex_session_id,
    is_session_id,
    lane_of,
    make_session_id,
    parse_session_id,
    seq_of,
    session_label,
)

DRIVER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_an_id_in_hex_is_the_driver_then_lane_and_sequence() -> None:
    sid = make_session_id(DRIVER, 2, 7)
    assert hex_session_id(sid) == "0x" + DRIVER[2:].lower() + "0" * 18 + "02" + "0007"
    assert (driver_of(sid), lane_of(sid), seq_of(sid)) == (DRIVER, 2, 7)
    assert is_session_id(sid)


@pytest.mark.parametrize(("lane", "seq"), [(-1, 1), (256, 1), (0, 0), (0, 65536)])
def test_make_refuses_what_the_contract_cannot_hold(lane: int, seq: int) -> None:
    with pytest.raises(ValueError, match="lane must be"):
        make_session_id(DRIVER, lane, seq)


def test_labels_are_short_and_name_the_lane_only_when_it_is_not_zero() -> None:
    assert session_label(make_session_id(DRIVER, 0, 7)) == "7"
    assert session_label(make_session_id(DRIVER, 2, 7)) == "2/7"


def test_parse_reads_hex_decimal_and_labels_of_a_known_driver() -> None:
    sid = make_session_id(DRIVER, 3, 12)
    assert parse_session_id(hex_session_id(sid)) == sid
    assert parse_session_id(str(sid)) == sid
    assert parse_session_id(" 3/12 ", driver=DRIVER) == sid
    assert parse_session_id("12", driver=DRIVER) == make_session_id(DRIVER, 0, 12)


@pytest.mark.parametrize(
    "text",
    [
        "7",  # a label, but no driver to resolve it against
        "abc",
        "0x1234",  # no driver in it
        hex(make_session_id(DRIVER, 0, 1) | 1 << 40),  # a stray bit between lane and driver
        hex(make_session_id(DRIVER, 0, 1) - 1),  # sequence number 0
        "",
    ],
)
def test_parse_refuses_what_is_not_a_session_id(text: str) -> None:
    with pytest.raises(ValueError, match="is not a session id"):
        parse_session_id(text)
