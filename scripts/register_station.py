"""Register a station (and its operator, if new) on the deployed EV Network.

    brownie run scripts/register_station.py main CP_ID CONNECTORS PRICE_PER_KWH SESSION_FEE [TIME_FEE_PER_HOUR] \
        --network evnet-anvil

Prices in whole tokens ("0.35"). Environment: EVN_DEPLOYMENT (deployment file), EVN_OPERATOR_KEY
(the operator's key; Anvil dev account 1 on a local chain), EVN_DEPLOYER_KEY (the registrar, who
onboards a new operator; Anvil dev account 0), EVN_OPERATOR_NAME, EVN_PAYOUT (payout address,
default the operator's own), EVN_METER_KEY (the station meter's P-256 public key, hex, base64 or PEM, as
the meter publishes it: the station then settles only on records that meter signed; set but empty or
malformed: refused, nothing registered)."""

import os

from brownie import EVToken, SessionEscrow

from ev_network.ocmf import OCMFError, registry_key
from ev_network.units import to_units
from scripts._common import account_from_env, deployment


def meter_key_from_env() -> bytes:
    """EVN_METER_KEY in the registry's form; b"" when the variable is not set (a plain station). Set but empty
    (an unset shell variable expanded) or not a P-256 key: SystemExit with one line, before any transaction."""
    if "EVN_METER_KEY" not in os.environ:
        return b""
    try:
        return registry_key(os.environ["EVN_METER_KEY"])
    except OCMFError as error:
        raise SystemExit(f"EVN_METER_KEY refused: {error} (unset it to register a plain station)") from None


def main(charge_point_id: str, connectors: str, price_per_kwh: str, session_fee: str, time_fee_per_hour: str = "0"):
    network = deployment()
    escrow = SessionEscrow.at(network.escrow)
    decimals = EVToken.at(network.token).decimals()  # any ERC-20's decimals(), e.g. 6 for a stablecoin
    operator = account_from_env("EVN_OPERATOR_KEY", 1)
    if not escrow.operatorOf(operator)[1]:
        registrar = account_from_env("EVN_DEPLOYER_KEY", 0)
        payout = os.environ.get("EVN_PAYOUT", operator.address)
        name = os.environ.get("EVN_OPERATOR_NAME", "Local CPO")
        escrow.registerOperator(operator, payout, name, {"from": registrar})
        print(f"operator {operator.address} registered ({name}), payout {payout}")
    tariff = tuple(to_units(price, decimals) for price in (price_per_kwh, session_fee, time_fee_per_hour))
    meter_key = meter_key_from_env()
    tx = escrow.addStation(charge_point_id, int(connectors), tariff, meter_key, {"from": operator})
    station_id = tx.events["StationRegistered"]["stationId"]
    signed = f", meter key {meter_key.hex()[:16]}..." if meter_key else ""
    print(f"station {station_id}: {charge_point_id}, {connectors} connectors, tariff {tariff}{signed}")
    return station_id
