"""The formal part of an invoice: the seller's legal data (legal name, postal address, VAT id) and the
net / VAT / gross split, from the operator's entry in the deployment's OperatorProfile contract.

Prices on chain are gross (VAT included); the VAT rate is the operator's. An operator that published
no profile (or a deployment without the contract) gives an invoice without VAT lines, which says so.
"""

from __future__ import annotations

from pydantic import BaseModel
from web3 import Web3

from ev_network.deployment import Deployment
from ev_network.operator_profile import OperatorProfiles, vat_split


class Seller(BaseModel):
    """The operator as a legal entity, with the VAT split of the invoice's total."""

    legal_name: str
    postal_address: str
    vat_id: str
    vat_rate_bp: int  # 1/100 % (1900 = 19 %)
    net: int
    vat: int

    @property
    def vat_rate(self) -> str:
        return f"{self.vat_rate_bp / 100:g} %"


def seller_of(w3: Web3, deployment: Deployment, operator: str, gross: int) -> Seller | None:
    """The operator's legal data and the VAT split of ``gross`` (None: no profile published)."""
    if deployment.operator_profile is None:
        return None
    profile = OperatorProfiles(w3, deployment.operator_profile).profile_of(operator)
    if profile is None:
        return None
    net, vat = vat_split(gross, profile.vat_rate_bp)
    return Seller(**vars(profile), net=net, vat=vat)


def seller_rows(seller: Seller | None) -> list[tuple[str, str]]:
    """The seller block of an invoice: (label, value) rows, the label only on the first."""
    if seller is None:
        return [("Seller", "(the operator has published no legal data on chain: not a VAT invoice)")]
    address = seller.postal_address.replace("\n", ", ")
    return [("Seller", seller.legal_name), ("", address), ("", f"VAT id {seller.vat_id or '-'}")]
