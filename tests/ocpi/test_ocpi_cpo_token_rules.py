"""How a tapped roaming eMSP token is decided (pure, core_client.ocpi.cpo.token_rules; 2.2.1 mod_tokens
WhitelistType): whitelisted, asked of the eMSP, or refused; the answer when the eMSP is silent; the OCPP status
of each AllowedType; and which tapped idTags are asked at all (core_client.sessions.cards.ask_roaming)."""

from __future__ import annotations

import pytest

from core_client.ocpi.cpo.token_rules import Route, allowed_evses, ocpp_status, tap_route, when_silent
from core_client.ocpi.models import LocationReferences, Token
from core_client.ocpi.models.enums import AllowedType, WhitelistType
from core_client.sessions.cards import Card, CardMandate, ask_roaming


def token(whitelist: WhitelistType, valid: bool = True) -> Token:
    return Token.model_validate(
        {
            "country_code": "NL",
            "party_id": "EMS",
            "uid": "04A1B2C3D4",
            "type": "RFID",
            "contract_id": "NL-EMS-1",
            "issuer": "EMS",
            "valid": valid,
            "whitelist": whitelist.value,
            "last_updated": "2026-12-06T12:00:00Z",
        }
    )


@pytest.mark.parametrize(
    ("whitelist", "valid", "route", "silent"),
    [
        (WhitelistType.ALWAYS, True, Route.WHITELISTED, "Accepted"),
        (WhitelistType.ALWAYS, False, Route.REFUSED, "Invalid"),
        (WhitelistType.ALLOWED, True, Route.ASK, "Accepted"),
        (WhitelistType.ALLOWED_OFFLINE, True, Route.ASK, "Accepted"),
        (WhitelistType.ALLOWED_OFFLINE, False, Route.ASK, "Invalid"),  # asked even when invalid (2.2.1)
        (WhitelistType.NEVER, True, Route.ASK, "Invalid"),
        (WhitelistType.NEVER, False, Route.ASK, "Invalid"),
    ],
)
def test_the_whitelist_decides_whether_the_emsp_is_asked_and_what_its_silence_means(whitelist, valid, route, silent):
    held = token(whitelist, valid)
    assert tap_route(held).route is route
    assert when_silent(held).value == silent


def test_a_token_not_held_is_asked_and_refused_when_the_emsp_is_silent():
    assert tap_route(None).route is Route.ASK
    assert when_silent(None).value == "Invalid"


def test_each_allowed_type_answers_the_charge_point():
    answers = {allowed: ocpp_status(allowed).value for allowed in AllowedType}
    assert answers == {
        AllowedType.ALLOWED: "Accepted",
        AllowedType.BLOCKED: "Blocked",
        AllowedType.EXPIRED: "Expired",
        AllowedType.NO_CREDIT: "Invalid",
        AllowedType.NOT_ALLOWED: "Invalid",
    }


def test_only_an_idtag_of_no_session_no_card_and_no_network_tag_is_asked():
    mandate = CardMandate(
        mandate_id=1, payer="0x" + "11" * 20, cap_per_session=10, total=100, committed=0, expiry=2**40,
        revoked=False, any_token=False, salt=b"s" * 32, operator_named=True, token_refs=frozenset(),
    )  # fmt: skip
    assert ask_roaming("04A1B2C3D4", False, None)
    assert not ask_roaming("04A1B2C3D4", True, None)  # a session's tag
    assert not ask_roaming("04A1B2C3D4", False, Card(mandate, b"r" * 32))  # a linked or vouched-for card
    assert not ask_roaming("EVN17", False, None)  # an EV Network session tag
    assert not ask_roaming("  ", False, None)


def test_an_allowed_answer_lets_the_token_charge_only_at_the_evses_it_names():
    asked = LocationReferences(location_id="ST-7", evse_uids=["CP-1-1", "CP-1-2"])
    assert allowed_evses(asked, None) == ["CP-1-1", "CP-1-2"]
    assert allowed_evses(asked, LocationReferences(location_id="st-7")) == ["CP-1-1", "CP-1-2"]
    assert allowed_evses(asked, LocationReferences(location_id="ST-7", evse_uids=["cp-1-2", "CP-9-1"])) == ["CP-1-2"]
    assert allowed_evses(asked, LocationReferences(location_id="ST-7", evse_uids=["CP-9-1"])) == []
    assert allowed_evses(asked, LocationReferences(location_id="ST-8", evse_uids=["CP-1-1"])) == []
