"""The operator's escrow as the OCPI bridge needs it: stations registered by ``core-client ocpi import``
(:class:`core_client.ocpi.bridge.StationRegistry`) and their tariffs changed by the CSMS's tariff pushes
(:class:`core_client.ocpi.tariff_pushes.StationTariffs`). Blocking chain calls."""

from __future__ import annotations

from ev_network.contracts import Escrow, Token
from ev_network.deployment import Deployment
from ev_network.operator_profile import OperatorProfiles
from ev_network.pricing import Tariff


class EscrowRegistry:
    """The operator's escrow (``escrow`` sends from the operator's account)."""

    def __init__(self, escrow: Escrow, deployment: Deployment) -> None:
        self.escrow = escrow
        self.deployment = deployment

    def decimals(self) -> int:
        return Token(self.escrow.w3, self.deployment.token).decimals()

    def vat_rate_bp(self) -> int | None:
        if self.deployment.operator_profile is None or self.escrow.sender is None:
            return None
        profile = OperatorProfiles(self.escrow.w3, self.deployment.operator_profile).profile_of(
            self.escrow.sender.address
        )
        return None if profile is None else profile.vat_rate_bp

    def add_station(self, charge_point_id: str, connectors: int, tariff: Tariff) -> int:
        return self.escrow.station_id_from(self.escrow.add_station(charge_point_id, connectors, tariff))

    def station_tariff(self, station_id: int) -> Tariff:
        return self.escrow.get_tariff(self.escrow.get_station(station_id).tariff_id)

    def set_tariff(self, station_id: int, tariff: Tariff) -> None:
        self.escrow.set_tariff(station_id, tariff)
