"""The one place the simulator relies on the inside of the ``ocpp`` package (written for ocpp 2.1).

A simulated charge point reconnects: it swaps the websocket its ``ChargePoint`` talks over, which
``ocpp`` keeps in the private ``_connection``. :data:`RELIED_ON` names it; :func:`problems` checks it
(a test runs it), so a new ``ocpp`` version that changes it fails loudly.
"""

from __future__ import annotations

from typing import Any

from ocpp.v16 import ChargePoint

#: ``ocpp`` internals used here: instance attributes of ChargePoint.
RELIED_ON = {"attributes": ("_connection",)}


def problems(charge_point: ChargePoint) -> list[str]:
    """What of :data:`RELIED_ON` ``charge_point`` lacks (empty: all there)."""
    return [f"ChargePoint().{a} is gone" for a in RELIED_ON["attributes"] if not hasattr(charge_point, a)]


class OcppChargePoint(ChargePoint):
    """``ocpp``'s ChargePoint with the websocket it talks over readable and replaceable."""

    @property
    def connection(self) -> Any:
        """The websocket the charge point talks over now."""
        return self._connection

    def use_connection(self, connection: Any) -> None:
        """Talk over ``connection`` from now on (a new one after a reconnect)."""
        self._connection = connection
