"""Invoices of settled sessions, built only from chain data: the SessionSettled event (the immutable
invoice record), the session's SessionRequested and SessionStarted events, the snapshotted tariff, the
operator's registry entry and legal data (:mod:`wallet.invoice_legal`: name, address, VAT id, net / VAT /
gross), the meter's signed records with the wallet's verification (:mod:`wallet.meter_proof`) and the
token's metadata. Rendered as text, JSON or PDF (fpdf2)."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from pydantic import BaseModel
from web3 import Web3

from ev_network.contracts import Escrow, SessionState, Token
from ev_network.deployment import Deployment
from ev_network.errors import chain_errors
from ev_network.events import SESSION_ENDINGS, EventReader, indexed_topic
from ev_network.pricing import PriceBreakdown, Tariff, breakdown
from ev_network.session_ids import driver_of, hex_session_id, session_label
from ev_network.session_view import SessionEventsIncomplete, SessionView, fold
from ev_network.tx import call_view
from wallet.errors import SessionNotFound, WalletError
from wallet.invoice_legal import Seller, seller_lines, seller_of
from wallet.meter_proof import MeterProof, describe, meter_proof
from wallet.models import SessionId, TariffView, session_name
from wallet.units import format_amount, format_duration, format_wh_as_kwh, iso_utc


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

    def amount(self, units: int) -> str:
        """``units`` formatted as whole tokens with the currency symbol."""
        return f"{format_amount(units, self.decimals)} {self.currency}"


def invoice_number(chain_id: int, escrow: str, session_id: int) -> str:
    """``EVN-<chain id>-<escrow: 6 hex digits>-<driver: 8 hex digits>-<lane->seq>``, e.g.
    ``EVN-31337-5FBDB2-70997970-7`` (lane 0) or ``EVN-31337-5FBDB2-70997970-2-7`` (lane 2): short, the
    same every time for a session, and never shared by two sessions of one driver (a driver's label is
    unique). Two drivers collide only if their addresses share the first 8 hex digits (32 bits) and they
    have the same label; the invoice carries the full session id. No ``/``: the number is a file name."""
    driver = driver_of(session_id)[2:10].upper()
    return f"EVN-{chain_id}-{escrow[2:8].upper()}-{driver}-{session_label(session_id).replace('/', '-')}"


def build_invoice(w3: Web3, deployment: Deployment, session_id: int, own: str | None = None) -> Invoice:
    """The invoice of ``session_id``; WalletError if the session is not settled. ``own`` (the wallet's
    account) decides how messages name the session (see :func:`wallet.models.session_name`)."""
    escrow = Escrow(w3, deployment)
    reader = EventReader(w3, deployment.escrow)
    names = ["SessionRequested", "SessionStarted", *SESSION_ENDINGS]
    found = reader.fetch(deployment.deployment_block, reader.head(), names, [indexed_topic(session_id)])
    name = session_name(session_id, own)
    try:
        view: SessionView | None = fold(found)
    except SessionEventsIncomplete:
        view = None
    if view is None or view.state is not SessionState.SETTLED:
        if view is not None and view.ended:
            ended = view.state.name.lower()
            raise WalletError(f"no invoice for session {name}: it is {ended}, not settled (nothing was charged)")
        state = escrow.get_session(session_id).state
        if state is SessionState.NONE:
            raise SessionNotFound(f"there is no session {name}")
        raise WalletError(f"no invoice for session {name}: it is {state.name.lower()}, not settled yet")
    tariff = escrow.get_tariff(view.tariff_id)
    station = escrow.get_station(view.station_id)
    operator = escrow.operator_of(view.operator)
    token = Token(w3, call_view(escrow.contract.functions.token()))
    max_duration = call_view(escrow.contract.functions.maxDuration())
    charge = breakdown(tariff, view.energy_wh, view.duration_s, deposit=view.deposit, max_duration_s=max_duration)
    if charge.total != view.cost:
        raise WalletError(f"session {name}: the tariff gives {charge.total} but the settlement charged {view.cost}")
    with chain_errors(w3):
        chain_id = w3.eth.chain_id
    return Invoice(
        number=invoice_number(chain_id, deployment.escrow, session_id),
        chain_id=chain_id,
        escrow=Web3.to_checksum_address(deployment.escrow),
        session_id=session_id,
        session_label=session_label(session_id),
        issued_at=iso_utc(view.ended_at),
        issuer=Issuer(name=operator.name, operator=view.operator, payout=view.payout),
        driver=view.driver,
        station_id=view.station_id,
        charge_point_id=station.charge_point_id,
        connector=view.connector,
        ocpp_transaction_id=view.transaction_id,
        tariff=TariffView(tariff_id=view.tariff_id, **vars(tariff)),
        started_at=iso_utc(view.started_at),
        ended_at=iso_utc(view.ended_at),
        duration_s=view.duration_s,
        billed_duration_s=charge.billed_s,
        meter_start_wh=view.meter_start,
        meter_stop_wh=view.meter_stop,
        energy_wh=view.energy_wh,
        energy_kwh=format_wh_as_kwh(view.energy_wh),
        lines=invoice_lines(tariff, view.energy_wh, charge),
        total=charge.total,
        deposit=view.deposit,
        refund=view.refund,
        currency=token.symbol(),
        decimals=token.decimals(),
        token=token.address,
        open_tx=view.open_tx,
        start_tx=view.start_tx,
        settle_tx=view.end_tx,
        seller=seller_of(w3, deployment, view.operator, charge.total),
        meter_proof=meter_proof(escrow, session_id, view.station_id, view.end_tx),
    )


def invoice_lines(tariff: Tariff, energy_wh: int, charge: PriceBreakdown) -> list[InvoiceLine]:
    """The priced lines of ``charge``: session fee, energy, charging time (when the tariff has a time
    fee) and the cap at the deposit (when it applied); they add up to ``charge.total``."""
    lines = [
        InvoiceLine(description="Session fee", quantity="1", unit="session", unit_price=tariff.session_fee,
                    amount=charge.session_fee),
        InvoiceLine(description="Energy", quantity=format_wh_as_kwh(energy_wh), unit="kWh",
                    unit_price=tariff.price_per_kwh, amount=charge.energy),
    ]  # fmt: skip
    if tariff.time_fee_per_hour:
        lines.append(
            InvoiceLine(description="Charging time", quantity=format_duration(charge.billed_s), unit="h",
                        unit_price=tariff.time_fee_per_hour, amount=charge.time)
        )  # fmt: skip
    if charge.cap:
        lines.append(
            InvoiceLine(description="Capped at the deposit", quantity="", unit="", unit_price=None, amount=charge.cap)
        )
    return lines


# ------------------------------------------------------------------ renderers
def _line_text(inv: Invoice, line: InvoiceLine) -> str:
    if line.unit_price is None or line.unit == "session":
        return line.description
    per = f"{format_amount(line.unit_price, inv.decimals)}/{line.unit}"
    return f"{line.description}: {line.quantity} {line.unit} x {per}"


def render_text(inv: Invoice) -> str:
    """A human-readable invoice (plain text, fixed width)."""
    width = 72
    rows = [
        f"INVOICE {inv.number}".ljust(width - 20) + f"issued {inv.issued_at}",
        "=" * width,
        *seller_lines(inv.seller),
        f"Issuer    {inv.issuer.name} (operator {inv.issuer.operator})",
        f"Payout    {inv.issuer.payout}",
        f"Driver    {inv.driver}",
        f"Station   {inv.charge_point_id} (station {inv.station_id}), connector {inv.connector}, "
        f"OCPP transaction {inv.ocpp_transaction_id}",
        f"Charging  {inv.started_at} -> {inv.ended_at} ({format_duration(inv.duration_s)})",
        f"Energy    {inv.energy_kwh} kWh (meter {inv.meter_start_wh} -> {inv.meter_stop_wh} Wh)",
        f"Tariff    #{inv.tariff.tariff_id}",
        "-" * width,
    ]
    for line in inv.lines:
        amount = inv.amount(line.amount)
        rows.append(f"  {_line_text(inv, line)}".ljust(width - len(amount)) + amount)
    total = inv.amount(inv.total)
    rows += [
        "-" * width,
        *_vat_rows(inv, width),
        ("  TOTAL (gross)" if inv.seller else "  TOTAL").ljust(width - len(total)) + total,
        f"  Deposit {inv.amount(inv.deposit)}, refunded {inv.amount(inv.refund)}",
        "",
        f"Paid in {inv.currency} (token {inv.token}, {inv.decimals} decimals) on chain {inv.chain_id}",
        f"Session   {inv.session_label} of driver {inv.driver}",
        f"          id {hex_session_id(inv.session_id)}",
        f"Escrow    {inv.escrow}",
        f"Open tx   {inv.open_tx}",
        f"Start tx  {inv.start_tx}",
        f"Settle tx {inv.settle_tx}",
        *describe(inv.meter_proof),
    ]
    return "\n".join(rows) + "\n"


def _vat_rows(inv: Invoice, width: int) -> list[str]:
    if inv.seller is None:
        return []
    net, vat = inv.amount(inv.seller.net), inv.amount(inv.seller.vat)
    label = f"  VAT {inv.seller.vat_rate}"
    return ["  Net".ljust(width - len(net)) + net, label.ljust(width - len(vat)) + vat]


def render_json(inv: Invoice) -> str:
    """The invoice as JSON (``model_dump``): amounts as integers in the smallest unit."""
    return inv.model_dump_json(indent=2)


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def render_pdf(inv: Invoice, path: str | Path) -> Path:
    """Write the invoice as a one-page PDF (core font Helvetica, ASCII text); return the path."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(datetime.fromtimestamp(0, tz=timezone.utc).replace(year=2000))  # deterministic
    pdf.set_title(_ascii(f"Invoice {inv.number}"))
    pdf.set_author(_ascii(inv.issuer.name))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _ascii(f"Invoice {inv.number}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 9)
    for line in seller_lines(inv.seller):
        pdf.cell(0, 5, _ascii(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    details = [
        ("Issued", inv.issued_at),
        ("Issuer", f"{inv.issuer.name} (operator {inv.issuer.operator})"),
        ("Payout", inv.issuer.payout),
        ("Driver", inv.driver),
        ("Station", f"{inv.charge_point_id} (station {inv.station_id}), connector {inv.connector}"),
        ("OCPP transaction", str(inv.ocpp_transaction_id)),
        ("Charging", f"{inv.started_at} -> {inv.ended_at} ({format_duration(inv.duration_s)})"),
        ("Energy", f"{inv.energy_kwh} kWh (meter {inv.meter_start_wh} -> {inv.meter_stop_wh} Wh)"),
        ("Tariff", f"#{inv.tariff.tariff_id}"),
    ]
    for label, value in details:
        pdf.cell(35, 5, _ascii(label))
        pdf.multi_cell(0, 5, _ascii(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(130, 6, "Item", border="B")
    pdf.cell(0, 6, "Amount", border="B", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 10)
    for line in inv.lines:
        pdf.cell(130, 6, _ascii(_line_text(inv, line)))
        pdf.cell(0, 6, _ascii(inv.amount(line.amount)), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if inv.seller is not None:
        for label, units in (("Net", inv.seller.net), (f"VAT {inv.seller.vat_rate}", inv.seller.vat)):
            pdf.cell(130, 6, _ascii(label))
            pdf.cell(0, 6, _ascii(inv.amount(units)), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(130, 8, "Total (gross)" if inv.seller is not None else "Total", border="T")
    pdf.cell(0, 8, _ascii(inv.amount(inv.total)), border="T", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 6, _ascii(f"Deposit {inv.amount(inv.deposit)}, refunded {inv.amount(inv.refund)}"),
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # fmt: skip
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(0, 5, "Proof on chain", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 8)
    proofs = [
        ("Chain", f"{inv.chain_id}, escrow {inv.escrow}"),
        ("Session", f"{inv.session_label}, id {hex_session_id(inv.session_id)}"),
        ("Token", f"{inv.currency} {inv.token} ({inv.decimals} decimals)"),
        ("Open tx", inv.open_tx),
        ("Start tx", inv.start_tx),
        ("Settle tx", inv.settle_tx),
    ]
    for label, value in proofs:
        pdf.cell(20, 4.5, label)
        pdf.multi_cell(0, 4.5, _ascii(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for line in describe(inv.meter_proof):
        pdf.multi_cell(0, 4.5, _ascii(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if inv.meter_proof is not None:  # the records themselves, for any OCMF checker
        pdf.set_font("Courier", "", 5)
        for reading in (inv.meter_proof.begin, inv.meter_proof.end):
            pdf.multi_cell(0, 2.5, _ascii(reading.record), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return save_invoice(path, bytes(pdf.output()))


def save_invoice(path: str | Path, data: bytes | str) -> Path:
    """Write a rendered invoice to ``path`` (making its folder); WalletError naming the path if it cannot."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    except OSError as exc:
        raise WalletError(f"cannot write the invoice to {path}: {exc.strerror}") from None
    return path
