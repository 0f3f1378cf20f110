"""What an invoice of a settled session holds (the JSON model): built by :mod:`wallet.invoice`, shown
through :mod:`wallet.invoice_view`."""

from __future__ import annotations

from pydantic import BaseModel

from wallet.invoice_legal import Seller
from wallet.meter_proof import MeterProof
from wallet.models import SessionId, TariffView


class Issuer(BaseModel):
    """The charge point operator who sold the energy, and where the money went."""

    name: str
    operator: str
    payout: str


class InvoiceLine(BaseModel):
    """One priced line; ``amount`` in the token's smallest unit (negative for the cap adjustment)."""

    description: str
    quantity: str
    unit: str
    unit_price: int | None
    amount: int


class Invoice(BaseModel):
    """The invoice of one settled session. ``sum(line.amount) == total == cost`` of SessionSettled."""

    number: str
    chain_id: int
    escrow: str
    session_id: SessionId
    session_label: str
    issued_at: str
    issuer: Issuer
    driver: str
    station_id: int
    charge_point_id: str
    connector: int
    ocpp_transaction_id: int
    tariff: TariffView
    started_at: str
    ended_at: str
    duration_s: int
    billed_duration_s: int
    meter_start_wh: int
    meter_stop_wh: int
    energy_wh: int
    energy_kwh: str
    lines: list[InvoiceLine]
    total: int
    deposit: int
    refund: int
    currency: str
    decimals: int
    token: str
    open_tx: str
    start_tx: str
    settle_tx: str
    seller: Seller | None = None  # None: the operator published no legal data (no VAT lines)
    meter_proof: MeterProof | None = None  # None: a station without a meter key (the operator's reading)
