"""The simulator's one reliance on the inside of ``ocpp`` (simulator.ocpp_adapter) still holds."""

from simulator.ocpp_adapter import OcppChargePoint, problems


def test_the_ocpp_internals_the_simulator_relies_on_are_there():
    """Fails loudly when a new ocpp version changes what simulator.ocpp_adapter uses."""
    first, second = object(), object()
    charge_point = OcppChargePoint("CP-1", first)
    assert problems(charge_point) == []
    assert charge_point.connection is first
    charge_point.use_connection(second)  # a reconnect: ocpp's own calls go out over the new one
    assert charge_point._connection is second
