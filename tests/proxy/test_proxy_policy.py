"""Proxy mode's pure decisions: whose answer the charge point gets, and transaction-id rewriting."""

from __future__ import annotations

import pytest
from ocpp.messages import Call, CallError, CallResult

from core_client.proxy.config import OfflineIdTags
from core_client.proxy.policy import Source, offline_answer, reply, source, to_charge_point, to_csms
from tools.harness.upstream_relay import meter, start, stop

ACCEPTED, INVALID = {"status": "Accepted"}, {"status": "Invalid"}
OFFLINE_ID = 2_000_000_007


@pytest.mark.parametrize(
    ("action", "id_tag", "expected"),
    [
        ("Authorize", "EVN12", Source.CORE),
        ("StartTransaction", "EVN12", Source.MERGED),
        ("StopTransaction", "EVN12", Source.CSMS),
        ("Authorize", "CARD-1", Source.CSMS),
        ("StartTransaction", "CARD-1", Source.CSMS),
        ("Authorize", "EVN012", Source.CSMS),  # not a tag the Core Client hands out
        ("Authorize", "EVN", Source.CSMS),
    ],
)
def test_the_chain_answers_only_authorize_and_start_of_ev_network_tags(action, id_tag, expected):
    assert source(action, {"idTag": id_tag}) is expected


def test_the_csms_answer_goes_back_under_the_charge_points_message_id():
    call = Call("cp-1", "StartTransaction", start("CARD-1"))
    csms = CallResult("cp-1", {"transactionId": 1001, "idTagInfo": INVALID})
    local = {"transactionId": 5, "idTagInfo": INVALID}
    assert reply(call, csms, local).payload == {"transactionId": 1001, "idTagInfo": INVALID}
    error = reply(call, CallError("cp-1", "InternalError", "db down", {}), local)
    assert isinstance(error, CallError) and (error.unique_id, error.error_code) == ("cp-1", "InternalError")


def test_a_chain_session_gets_the_chains_idtaginfo_and_the_csmss_transaction_id():
    call = Call("cp-1", "StartTransaction", start("EVN3"))
    local = {"transactionId": 5, "idTagInfo": ACCEPTED}
    answer = reply(call, CallResult("cp-1", {"transactionId": 1001, "idTagInfo": INVALID}), local)
    assert (answer.unique_id, answer.payload) == ("cp-1", {"transactionId": 1001, "idTagInfo": ACCEPTED})
    authorize = Call("cp-2", "Authorize", {"idTag": "EVN3"})
    assert reply(authorize, CallResult("cp-2", {"idTagInfo": INVALID}), {"idTagInfo": ACCEPTED}).payload == {
        "idTagInfo": ACCEPTED
    }
    refused = reply(call, CallError("cp-1", "GenericError", "", {}), local, OFFLINE_ID)
    assert refused.payload == {"transactionId": OFFLINE_ID, "idTagInfo": ACCEPTED}  # the chain session still runs


@pytest.mark.parametrize(("policy", "status"), [(OfflineIdTags.ACCEPT, ACCEPTED), (OfflineIdTags.REJECT, INVALID)])
def test_offline_other_tags_follow_the_configured_policy(policy, status):
    started = offline_answer(Call("1", "StartTransaction", start("CARD-1")), {"idTagInfo": INVALID}, OFFLINE_ID, policy)
    assert started == {"transactionId": OFFLINE_ID, "idTagInfo": status}
    assert offline_answer(Call("2", "Authorize", {"idTag": "CARD-1"}), {"idTagInfo": INVALID}, None, policy) == {
        "idTagInfo": status
    }
    stopped = offline_answer(Call("3", "StopTransaction", {**stop(OFFLINE_ID, 9), "idTag": "CARD-1"}), {}, None, policy)
    assert stopped == {"idTagInfo": status}


def test_offline_the_chain_still_judges_its_own_tags_and_everything_else_gets_the_core_clients_answer():
    invalid = {"transactionId": 5, "idTagInfo": INVALID}  # e.g. the session was cancelled on chain
    started = offline_answer(Call("1", "StartTransaction", start("EVN3")), invalid, OFFLINE_ID)
    assert started == {"transactionId": OFFLINE_ID, "idTagInfo": INVALID}
    boot = {"status": "Rejected", "currentTime": "t", "interval": 300}  # a station not on chain: the CSMS's anyway
    assert offline_answer(Call("2", "BootNotification", {}), boot) == {**boot, "status": "Accepted"}
    assert offline_answer(Call("3", "MeterValues", meter(OFFLINE_ID, 10)), {}) == {}
    assert offline_answer(Call("4", "StopTransaction", stop(OFFLINE_ID, 10)), {}) == {}
    with pytest.raises(ValueError, match="offline transaction id"):
        offline_answer(Call("5", "StartTransaction", start("CARD-1")), {})


def test_transaction_ids_are_rewritten_both_ways_only_where_mapped():
    ids = {OFFLINE_ID: 1001}
    assert to_csms("MeterValues", meter(OFFLINE_ID, 10), ids) == meter(1001, 10)
    assert to_csms("StopTransaction", stop(OFFLINE_ID, 10), ids) == stop(1001, 10)
    assert to_csms("MeterValues", meter(77, 10), ids) == meter(77, 10)
    original = stop(OFFLINE_ID, 10)
    to_csms("StopTransaction", original, ids)
    assert original == stop(OFFLINE_ID, 10)  # not changed in place (the outbox keeps what the charge point sent)

    back = {1001: OFFLINE_ID}
    assert to_charge_point("RemoteStopTransaction", {"transactionId": 1001}, back) == {"transactionId": OFFLINE_ID}
    assert to_charge_point("RemoteStopTransaction", {"transactionId": 9}, back) == {"transactionId": 9}
    profile = {"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 1, "transactionId": 1001}}
    assert to_charge_point("SetChargingProfile", profile, back)["csChargingProfiles"]["transactionId"] == OFFLINE_ID
