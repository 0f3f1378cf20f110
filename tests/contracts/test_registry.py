"""The station registry (inherited by the escrow) on a real Anvil: operators, stations, tariffs,
who may change what, and the payout address used at settlement."""

from __future__ import annotations

from web3 import Web3

from ev_network.contracts import SessionState
from ev_network.ocmf import registry_key
from ev_network.pricing import Tariff, price
from simulator.meter import SigningMeter
from tools.harness.chain import TARIFF, TIMED_TARIFF, TOKEN, Net
from tools.harness.contracts import ZERO, events, reverts

REGISTRAR_ROLE = Web3.keccak(text="REGISTRAR_ROLE")


def test_only_the_registrar_registers_operators(clean_chain: Net) -> None:
    net = clean_chain
    newcomer, payout = net.drivers[2], net.drivers[3]
    with reverts("AccessControlUnauthorizedAccount") as info:
        net.escrow(net.operator).register_operator(newcomer.address, payout.address, "Rogue")
    assert info.value.args_ == (net.operator.address, REGISTRAR_ROLE)
    assert not net.escrow().operator_of(newcomer.address).registered
    receipt = net.escrow(net.admin).register_operator(newcomer.address, payout.address, "Fresh Power Ltd")
    assert events(net.escrow(), receipt, "OperatorRegistered") == [
        {"operator": newcomer.address, "payout": payout.address, "name": "Fresh Power Ltd"}
    ]
    record = net.escrow().operator_of(newcomer.address)
    assert (record.payout, record.registered, record.name) == (payout.address, True, "Fresh Power Ltd")


def test_register_operator_refuses_duplicates_and_zero_addresses(clean_chain: Net) -> None:
    registrar = clean_chain.escrow(clean_chain.admin)
    with reverts("OperatorAlreadyRegistered") as info:
        registrar.register_operator(clean_chain.operator.address, clean_chain.payout.address, "Again")
    assert info.value.args_ == (clean_chain.operator.address,)
    someone = clean_chain.drivers[4].address
    with reverts("ZeroAddress"):
        registrar.register_operator(ZERO, someone, "No account")
    with reverts("ZeroAddress"):
        registrar.register_operator(someone, ZERO, "No payout")


def test_add_station_needs_an_operator_and_valid_input(clean_chain: Net) -> None:
    net = clean_chain
    with reverts("NotOperator") as info:
        net.escrow(net.drivers[0]).add_station("CP-DRIVER", 1, TARIFF)
    assert info.value.args_ == (net.drivers[0].address,)
    operator = net.escrow(net.operator)
    with reverts("InvalidChargePointId") as info:
        operator.add_station("", 1, TARIFF)
    assert info.value.args_ == (0, 48)
    with reverts("InvalidChargePointId") as info:
        operator.add_station("X" * 49, 1, TARIFF)
    assert info.value.args_ == (49, 48)
    with reverts("InvalidConnectorCount") as info:
        operator.add_station("CP-NO-CONNECTORS", 0, TARIFF)
    assert info.value.args_ == (0,)
    longest = "L" * 48
    station_id = net.add_station(longest, connectors=255)
    assert net.escrow().get_station(station_id).connectors == 255
    net.add_station("CP-TAKEN", connectors=1)
    with reverts("ChargePointIdTaken") as info:
        operator.add_station("CP-TAKEN", 2, TARIFF)
    assert info.value.args_ == ("CP-TAKEN",)
    with reverts("ChargePointIdTaken"):  # ids are global: another operator cannot take it either
        net.escrow(net.operator2).add_station("CP-TAKEN", 2, TARIFF)


def test_station_record_and_lookup_by_charge_point(clean_chain: Net) -> None:
    net = clean_chain
    meter = SigningMeter.for_charge_point("CP-LOOKUP")
    receipt = net.escrow(net.operator).add_station("CP-LOOKUP", 3, TIMED_TARIFF, meter.public_key_der)
    station_id = net.escrow().station_id_from(receipt)
    assert events(net.escrow(), receipt, "StationRegistered") == [
        {"stationId": station_id, "operator": net.operator.address, "chargePointId": "CP-LOOKUP", "connectors": 3}
    ]
    station = net.escrow().station_by_charge_point("CP-LOOKUP")
    assert station is not None
    assert station == net.escrow().get_station(station_id)
    assert (station.operator, station.connectors, station.active) == (net.operator.address, 3, True)
    assert (station.charge_point_id, station.meter_public_key) == ("CP-LOOKUP", registry_key(meter.public_key_der))
    assert net.escrow().get_tariff(station.tariff_id) == TIMED_TARIFF
    assert net.escrow().station_by_charge_point("CP-NOBODY") is None
    with reverts("UnknownStation"):
        net.escrow().get_station(station_id + 1)
    assert net.escrow().station_count() == station_id
    assert [s.station_id for s in net.escrow().stations()][-1] == station_id


def test_get_tariff_of_unknown_id(clean_chain: Net) -> None:
    escrow = clean_chain.escrow()
    with reverts("UnknownTariff") as info:
        escrow.get_tariff(0)  # id 0 means "none"
    assert info.value.args_ == (0,)
    station_id = clean_chain.add_station("CP-TARIFF")
    last = escrow.get_station(station_id).tariff_id
    assert escrow.get_tariff(last) == TARIFF
    with reverts("UnknownTariff"):
        escrow.get_tariff(last + 1)
    with reverts("UnknownTariff"):
        escrow.quote(last + 1, 1000, 0)


def test_only_the_station_operator_changes_a_station(clean_chain: Net) -> None:
    net = clean_chain
    station_id = net.add_station("CP-MINE")
    intruders = [net.escrow(net.operator2), net.escrow(net.drivers[0]), net.escrow(net.admin)]
    cheap = Tariff(price_per_kwh=1, session_fee=0)
    for intruder in intruders:
        with reverts("NotStationOperator") as info:
            intruder.set_tariff(station_id, cheap)
        assert info.value.args_ == (station_id, intruder.sender.address)
        with reverts("NotStationOperator"):
            intruder.set_active(station_id, False)
        with reverts("NotStationOperator"):
            intruder._send(intruder.contract.functions.setMeterPublicKey(station_id, b"evil"), True)
    with reverts("UnknownStation"):
        net.escrow(net.operator).set_active(station_id + 1, False)

    operator = net.escrow(net.operator)
    before = net.escrow().get_station(station_id).tariff_id
    receipt = operator.set_tariff(station_id, cheap)
    (tariff_set,) = events(net.escrow(), receipt, "TariffSet")
    assert tariff_set == {
        "stationId": station_id,
        "tariffId": before + 1,
        "pricePerKWh": 1,
        "sessionFee": 0,
        "timeFeePerHour": 0,
    }
    assert net.escrow().get_station(station_id).tariff_id == before + 1
    assert net.escrow().get_tariff(before) == TARIFF  # the old record is kept
    operator.set_active(station_id, False)
    assert not net.escrow().get_station(station_id).active
    operator.set_active(station_id, True)
    assert net.escrow().get_station(station_id).active
    new_key = registry_key(SigningMeter.for_charge_point("CP-MINE").public_key_der)
    operator.set_meter_public_key(station_id, new_key)
    assert net.escrow().get_station(station_id).meter_public_key == new_key


def test_set_payout_applies_to_later_settlements(clean_chain: Net) -> None:
    net = clean_chain
    station_id = net.add_station("CP-PAYOUT")
    driver, new_payout = net.drivers[0], net.drivers[9]
    net.fund(driver)
    escrow, operator = net.escrow(driver), net.escrow(net.operator)
    first = escrow.session_id_from(escrow.open(station_id, 1, 10 * TOKEN))
    second = escrow.session_id_from(escrow.open(station_id, 2, 10 * TOKEN))
    operator.start(first, 1, 0)
    operator.start(second, 2, 0)
    token = net.token()
    old_balance, new_balance = token.balance_of(net.payout.address), token.balance_of(new_payout.address)
    operator.settle(first, 1000)
    assert token.balance_of(net.payout.address) - old_balance == price(TARIFF, 1000)

    with reverts("NotOperator"):
        net.escrow(net.drivers[1]).set_payout(new_payout.address)
    with reverts("ZeroAddress"):
        operator.set_payout(ZERO)
    receipt = operator.set_payout(new_payout.address)
    assert events(net.escrow(), receipt, "PayoutChanged") == [
        {"operator": net.operator.address, "payout": new_payout.address}
    ]
    assert net.escrow().operator_of(net.operator.address).payout == new_payout.address
    receipt = operator.settle(second, 2000)  # a session opened before the change pays the new address
    assert events(net.escrow(), receipt, "SessionSettled")[0]["payout"] == new_payout.address
    assert token.balance_of(new_payout.address) - new_balance == price(TARIFF, 2000)
    assert token.balance_of(net.payout.address) - old_balance == price(TARIFF, 1000)
    assert net.escrow().get_session(second).state == SessionState.SETTLED


def test_meter_keys_in_every_published_form_and_refused_otherwise(clean_chain: Net) -> None:
    """DER SubjectPublicKeyInfo, 04 || x || y and x || y register the same point; anything else, or a
    point off the curve, reverts InvalidMeterKey; each change emits MeterPublicKeySet with the key as given."""
    net = clean_chain
    station_id = net.add_station("CP-METER-KEY")
    operator, reader = net.escrow(net.operator), net.escrow()
    meter = SigningMeter.for_charge_point("CP-METER-KEY")
    point = registry_key(meter.public_key_der)
    for form in (meter.public_key_der, point, point[1:]):
        net.time_travel(1)  # one change per second
        receipt = operator.set_meter_public_key(station_id, form)
        assert events(reader, receipt, "MeterPublicKeySet") == [{"stationId": station_id, "publicKey": form}]
        assert reader.get_station(station_id).meter_public_key == point
    off_curve = point[:-1] + bytes([point[-1] ^ 1])
    for bad in (b"\x04meter-key", off_curve, b"\x05" + point[1:], meter.public_key_der[:-1]):
        with reverts("InvalidMeterKey") as info:
            operator.set_meter_public_key(station_id, bad)
        assert info.value.args_ == (station_id, len(bad))
    assert reader.get_station(station_id).meter_public_key == point  # a refused key changes nothing
    net.time_travel(1)
    operator.set_meter_public_key(station_id, b"")
    assert reader.get_station(station_id).meter_public_key == b""


def test_a_meter_key_changes_at_most_once_a_second(clean_chain: Net) -> None:
    """Two changes in one second: the second is refused, so a change always writes fresh history slots and
    its gas estimate holds whichever block it lands in (a same-second overwrite cost less than the estimate
    of a change in a new second, and ran out of gas when it landed there)."""
    net = clean_chain
    station_id = net.add_station("CP-KEY-TWICE")
    operator = net.escrow(net.operator)
    first, second = (registry_key(SigningMeter.for_charge_point(cp).public_key_der) for cp in ("CP-A", "CP-B"))
    net.w3.provider.make_request("evm_setAutomine", [False])
    try:
        sender = net.sender(net.operator)  # a fixed gas limit: no estimate against the pending block
        calls = [operator.contract.functions.setMeterPublicKey(station_id, key) for key in (first, second)]
        hashes = [sender.submit(fn, gas=300_000) for fn in calls]
        net.w3.provider.make_request("evm_mine", [])  # both in one block, one second
    finally:
        net.w3.provider.make_request("evm_setAutomine", [True])
    receipts = [net.w3.eth.get_transaction_receipt(h) for h in hashes]
    assert [r["status"] for r in receipts] == [1, 0]
    assert net.escrow().get_station(station_id).meter_public_key == first
    net.time_travel(1)
    operator.set_meter_public_key(station_id, second)
    assert net.escrow().get_station(station_id).meter_public_key == second
