"""The cheap view-call path (ev_network.views) on a real Anvil: it answers what web3's ContractFunction
answers (structs, checksummed addresses, arrays as lists), names a revert's custom error, tells a chain that
is down, a node's own refusal and an address without code apart; and events decoded the same cheap way
(ev_network.events) as web3 decodes them."""

from __future__ import annotations

import pytest
from web3 import Web3
from web3._utils.events import get_event_data
from web3.logs import DISCARD

from ev_network.contracts import Escrow, Token
from ev_network.errors import ChainUnavailable, EVNetworkError, NodeError
from ev_network.events import ESCROW_EVENTS, EventReader, decode_log, receipt_events
from ev_network.tx import call_view
from ev_network.views import call, views_of
from tools.devchain import free_port
from tools.harness.chain import TOKEN, Env, Net
from tools.harness.contracts import reverts


def test_views_answer_what_web3_answers(env: Env) -> None:
    net = env.net
    escrow, token = net.escrow(), net.token()
    session_id = net.escrow(env.driver).session_id_from(net.escrow(env.driver).open(env.station, 1, 5 * TOKEN))
    reads = [
        (escrow, "getStation", (env.station,)),  # a struct with an address and bytes
        (escrow, "getSession", (session_id,)),
        (escrow, "operatorOf", (net.operator.address,)),  # a struct with a string
        (escrow, "stationByChargePoint", ("CP-ESCROW-1",)),
        (escrow, "stationCount", ()),
        (token, "eip712Domain", ()),  # several outputs, among them an array
        (token, "balanceOf", (env.driver.address,)),
    ]
    for wrapper, name, args in reads:
        assert wrapper._view(name, *args) == call_view(wrapper._fn(name, *args)), name
    station = escrow.get_station(env.station)
    assert station.operator == net.operator.address  # checksummed, as web3 gives it
    assert escrow.get_session(session_id).driver == env.driver.address
    assert escrow.get_session(session_id).deposit == 5 * TOKEN


def test_a_revert_names_the_custom_error_and_its_arguments(clean_chain: Net) -> None:
    escrow = clean_chain.escrow()
    with reverts("UnknownStation") as info:
        escrow.get_station(777)
    assert info.value.args_ == (777,)
    assert escrow.station_by_charge_point("CP-NOWHERE") is None  # its UnknownStation means "none"


def test_a_chain_that_is_down_raises_chain_unavailable(net: Net) -> None:
    dead = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{free_port()}", request_kwargs={"timeout": 0.5}))
    escrow = Escrow(dead, net.deployment)
    with pytest.raises(ChainUnavailable, match=r"cannot reach the chain at http://127\.0\.0\.1"):
        escrow.get_station(1)
    with pytest.raises(ChainUnavailable):
        Token(dead, net.deployment.token).balance_of(net.admin.address)


def test_a_node_refusal_and_an_address_without_code_are_errors_of_their_own(clean_chain: Net) -> None:
    net = clean_chain
    beyond = net.w3.eth.block_number + 1000
    with pytest.raises(NodeError, match="refused eth_call"):
        net.escrow().meter_key_at(1, 0, block=beyond)
    no_code = "0x000000000000000000000000000000000000dEaD"
    with pytest.raises(EVNetworkError, match="returned no data"):
        call(net.w3, no_code, views_of("SessionEscrow")["stationCount"], ())


def test_an_argument_out_of_range_is_refused_before_anything_is_sent(clean_chain: Net) -> None:
    with pytest.raises(ValueError, match="stationId 4294967296 is more than a uint32 holds"):
        clean_chain.escrow().get_station(2**32)


def test_events_decode_as_web3_decodes_them(env: Env) -> None:
    """Every escrow log of a whole session (registration with its string, request, start, settle) decoded by
    ev_network.events as web3's get_event_data decodes it; a receipt's events of one kind, as process_receipt."""
    net = env.net
    driver, operator = net.escrow(env.driver), net.escrow(net.operator)
    first = net.w3.eth.block_number
    session_id = driver.session_id_from(driver.open(env.station, 1, 5 * TOKEN))
    operator.start(session_id, 7, 1000)
    receipt = operator.settle(session_id, 4000)
    reader = EventReader(net.w3, net.deployment.escrow)
    logs = net.w3.eth.get_logs({"address": net.deployment.escrow, "fromBlock": 0, "toBlock": "latest"})
    names = set()
    for entry in logs:
        event = decode_log(net.w3, entry)
        expected = get_event_data(net.w3.codec, ESCROW_EVENTS[event.name], entry)
        assert (event.name, event.args) == (expected["event"], dict(expected["args"]))
        names.add(event.name)
    assert {"StationRegistered", "SessionRequested", "SessionStarted", "SessionSettled"} <= names
    assert [e.name for e in reader.fetch(first + 1, net.w3.eth.block_number)][-3:] == [
        "SessionRequested",
        "SessionStarted",
        "SessionSettled",
    ]
    settled = net.escrow().contract.events.SessionSettled().process_receipt(receipt, errors=DISCARD)
    assert receipt_events(receipt, net.deployment.escrow, "SessionSettled") == [dict(e["args"]) for e in settled]
    assert receipt_events(receipt, net.deployment.token, "SessionSettled") == []  # another contract's logs
