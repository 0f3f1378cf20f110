"""What an invoice shows a person, built once (:func:`invoice_view`) for every rendering: the web page,
the PDF and ``ev-wallet invoice`` (text) show the same seller, details, lines, net / VAT / gross, meter
verdict and proof. Amounts of money are rounded for display (:func:`ev_network.units.money`, with the
exact figure alongside); the invoice JSON keeps every amount exact, in the token's smallest unit."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from ev_network.session_ids import hex_session_id
from ev_network.units import MONEY_PLACES, format_amount, format_time, money
from wallet.invoice_legal import seller_rows
from wallet.invoice_model import Invoice, InvoiceLine
from wallet.meter_proof import verdict_rows
from wallet.units import format_duration


class Row(BaseModel):
    """A labelled line (``label`` empty: it continues the line above)."""

    label: str
    value: str


class AmountRow(BaseModel):
    """An amount with its label: ``amount`` as shown (rounded), ``exact`` to the token's last digit."""

    label: str
    amount: str
    exact: str


class InvoiceView(BaseModel):
    """One invoice as people read it; ``id`` marks the parts the web page links or tests."""

    number: str
    issued: str
    seller: list[Row]
    details: list[Row]
    lines: list[AmountRow]
    totals: list[AmountRow]  # net and VAT (a VAT invoice), then the total
    deposit: str  # "Deposit 10.00 EVE, refunded 9.4338 EVE"
    rounding: str | None  # the exact charge, when the shown total is rounded
    meter: list[Row]
    proof: list[Row]
    records: list[str]  # the meter's signed OCMF records, for any OCMF checker
    session_hex: str
    total_exact: str


def invoice_view(inv: Invoice) -> InvoiceView:
    """The view of ``inv`` that every rendering shows."""

    def amount(label: str, units: int) -> AmountRow:
        return AmountRow(
            label=label,
            amount=f"{money(units, inv.decimals)} {inv.currency}",
            exact=f"{format_amount(units, inv.decimals)} {inv.currency}",
        )

    totals = [amount("Total", inv.total)]
    if inv.seller is not None:
        vat = inv.seller
        totals = [amount("Net", vat.net), amount(f"VAT {vat.vat_rate}", vat.vat), amount("Total (gross)", inv.total)]
    exact_total = format_amount(inv.total, inv.decimals)
    rounded = money(inv.total, inv.decimals) != exact_total
    proof = inv.meter_proof
    return InvoiceView(
        number=inv.number,
        issued=when(inv.issued_at),
        seller=[Row(label=label, value=value) for label, value in seller_rows(inv.seller)],
        details=[
            Row(label="Issuer", value=f"{inv.issuer.name} (operator {inv.issuer.operator})"),
            Row(label="Payout", value=inv.issuer.payout),
            Row(label="Driver", value=inv.driver),
            Row(label="Station", value=f"{inv.charge_point_id}, connector {inv.connector} (station {inv.station_id})"),
            Row(label="OCPP", value=f"transaction {inv.ocpp_transaction_id}"),
            Row(
                label="Charging",
                value=f"{when(inv.started_at)} to {when(inv.ended_at)} ({format_duration(inv.duration_s)})",
            ),
            Row(label="Energy", value=f"{inv.energy_kwh} kWh (meter {inv.meter_start_wh} -> {inv.meter_stop_wh} Wh)"),
            Row(label="Tariff", value=f"#{inv.tariff.tariff_id}"),
        ],
        lines=[amount(line_text(inv, line), line.amount) for line in inv.lines],
        totals=totals,
        deposit=f"Deposit {money(inv.deposit, inv.decimals)} {inv.currency}, "
        f"refunded {money(inv.refund, inv.decimals)} {inv.currency}",
        rounding=(
            f"Amounts rounded to {MONEY_PLACES} decimals; charged exactly {exact_total} {inv.currency}"
            if rounded
            else None
        ),
        meter=[Row(label=label, value=value) for label, value in verdict_rows(proof)],
        proof=[
            Row(label="Chain", value=f"{inv.chain_id}, escrow {inv.escrow}"),
            Row(label="Session", value=f"{inv.session_label} of driver {inv.driver}"),
            Row(label="", value=f"id {hex_session_id(inv.session_id)}"),
            Row(label="Token", value=f"{inv.currency} {inv.token} ({inv.decimals} decimals)"),
            Row(label="Open tx", value=inv.open_tx),
            Row(label="Start tx", value=inv.start_tx),
            Row(label="Settle tx", value=inv.settle_tx),
        ],
        records=[] if proof is None else [proof.begin.record, proof.end.record],
        session_hex=hex_session_id(inv.session_id),
        total_exact=f"{exact_total} {inv.currency}",
    )


def line_text(inv: Invoice, line: InvoiceLine) -> str:
    """``Energy: 0.189 kWh x 0.35/kWh``, ``Charging time: 1:02:05 x 2.00/h``; the session fee and the cap by
    name only."""
    if line.unit_price is None or line.unit == "session":
        return line.description
    quantity = line.quantity if line.unit == "h" else f"{line.quantity} {line.unit}"  # h:mm:ss says its unit
    return f"{line.description}: {quantity} x {format_amount(line.unit_price, inv.decimals)}/{line.unit}"


def when(iso: str) -> str:
    """An invoice's ISO 8601 time as people read it (:func:`ev_network.units.format_time`)."""
    return format_time(datetime.fromisoformat(iso).timestamp())
