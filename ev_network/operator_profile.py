"""Bindings of the OperatorProfile contract: the operator's legal data for formal invoices (legal name,
postal address, VAT id, the VAT rate its prices include), written by each registered operator for itself.

    profiles = OperatorProfiles(w3, deployment.operator_profile, sender)
    profiles.set_profile(Profile("Stadtwerke Musterstadt GmbH", "Hauptstr. 1\\n12345 Musterstadt", "DE123456789", 1900))
    profiles.profile_of(operator)        # None if it has set none

Prices on chain are gross (VAT included); :func:`vat_split` splits an amount into net and VAT.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any

from web3 import Web3

from ev_network.contracts import _Wrapper
from ev_network.tx import TxSender, call_view

BASIS_POINTS = 10_000


@dataclass(frozen=True)
class Profile:
    """An operator's legal data; ``vat_rate_bp`` in 1/100 % (1900 = 19 %)."""

    legal_name: str
    postal_address: str
    vat_id: str
    vat_rate_bp: int


class OperatorProfiles(_Wrapper):
    """The OperatorProfile contract of a deployment."""

    def __init__(self, w3: Web3, address: str, sender: TxSender | None = None) -> None:
        super().__init__(w3, address, "OperatorProfile", sender)

    def profile_of(self, operator: str) -> Profile | None:
        """The operator's profile, or None if it has set none."""
        if not call_view(self._fn("hasProfile", Web3.to_checksum_address(operator))):
            return None
        return Profile(*call_view(self._fn("profileOf", Web3.to_checksum_address(operator))))

    def set_profile(self, profile: Profile, *, wait: bool = True) -> Any:
        """Set the sender's own profile (the sender must be a registered operator)."""
        return self._send(self._fn("setProfile", astuple(profile)), wait)


def vat_split(gross: int, vat_rate_bp: int) -> tuple[int, int]:
    """(net, VAT) of a gross amount at ``vat_rate_bp``: net rounded half up to the smallest unit, VAT the
    rest, so net + VAT == gross exactly."""
    net = (gross * BASIS_POINTS * 2 + BASIS_POINTS + vat_rate_bp) // (2 * (BASIS_POINTS + vat_rate_bp))
    return net, gross - net
