"""Invoices of settled sessions, built only from chain data: the SessionSettled event (the immutable
invoice record), the session's SessionRequested and SessionStarted events, the snapshotted tariff, the
operator's registry entry and legal data (:mod:`wallet.invoice_legal`: name, address, VAT id, net / VAT /
gross), the meter's signed records with the wallet's verification (:mod:`wallet.meter_proof`) and the
token's metadata. Rendered as text, JSON or PDF (fpdf2); the text, the PDF and the web page show the
same view of it (:mod:`wallet.invoice_view`)."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from web3 import Web3

from ev_network.contracts import Escrow, SessionState, Token
from ev_network.deployment import Deployment
from ev_network.errors import chain_errors
from ev_network.events import SESSION_ENDINGS, EventReader, indexed_topic
from ev_network.pricing import PriceBreakdown, Tariff, breakdown
from ev_network.session_ids import driver_of, session_label
from ev_network.session_view import SessionEventsIncomplete, SessionView, fold
from ev_network.tx import call_view
from wallet.errors import SessionNotFound, WalletError
from wallet.invoice_legal import seller_of
from wallet.invoice_model import Invoice, InvoiceLine, Issuer
from wallet.invoice_view import AmountRow, Row, invoice_view
from wallet.meter_proof import labelled, meter_proof
from wallet.models import TariffView, session_name
from wallet.units import format_duration, format_wh_as_kwh, iso_utc


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
def render_text(inv: Invoice) -> str:
    """A human-readable invoice (plain text, fixed width): :func:`wallet.invoice_view.invoice_view`."""
    view, width = invoice_view(inv), 72

    def rows(items: list[Row]) -> list[str]:
        return labelled([(row.label, row.value) for row in items])

    def priced(row: AmountRow, label: str | None = None) -> str:
        text = f"  {label or row.label}"
        return text.ljust(width - len(row.amount)) + row.amount

    lines = [
        f"INVOICE {view.number}".ljust(width - 28) + f"issued {view.issued}",
        "=" * width,
        *rows(view.seller),
        *rows(view.details),
        "-" * width,
        *(priced(row) for row in view.lines),
        "-" * width,
        *(priced(row, row.label.replace("Total", "TOTAL") if row is view.totals[-1] else None) for row in view.totals),
        f"  {view.deposit}",
        *([f"  {view.rounding}"] if view.rounding else []),
        "",
        *rows(view.proof),
        *rows(view.meter),
    ]
    return "\n".join(lines) + "\n"


def render_json(inv: Invoice) -> str:
    """The invoice as JSON (``model_dump``): amounts as integers in the smallest unit."""
    return inv.model_dump_json(indent=2)


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def render_pdf(inv: Invoice, path: str | Path) -> Path:
    """Write the invoice as a one-page PDF (core font Helvetica, ASCII text); return the path."""
    view = invoice_view(inv)
    pdf = FPDF(format="A4")
    pdf.set_creation_date(datetime.fromtimestamp(0, tz=timezone.utc).replace(year=2000))  # deterministic
    pdf.set_title(_ascii(f"Invoice {view.number}"))
    pdf.set_author(_ascii(inv.issuer.name))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _ascii(f"Invoice {view.number}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def rows(items: list[Row], label_mm: float, height: float) -> None:
        for row in items:
            pdf.cell(label_mm, height, _ascii(row.label))
            pdf.multi_cell(0, height, _ascii(row.value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def priced(row: AmountRow, height: float, border: str = "") -> None:
        pdf.cell(130, height, _ascii(row.label), border=border)
        pdf.cell(0, height, _ascii(row.amount), border=border, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.set_font("Helvetica", "", 9)
    rows([Row(label="Issued", value=view.issued), *view.seller, *view.details], 35, 5)
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 10)
    priced(AmountRow(label="Item", amount="Amount", exact=""), 6, "B")
    pdf.set_font("Helvetica", "", 10)
    for row in [*view.lines, *view.totals[:-1]]:
        priced(row, 6)
    pdf.set_font("Helvetica", "B", 11)
    priced(view.totals[-1], 8, "T")
    pdf.set_font("Helvetica", "", 9)
    for note in [view.deposit, *([view.rounding] if view.rounding else [])]:
        pdf.cell(0, 6, _ascii(note), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(0, 5, "Proof on chain", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 8)
    rows([*view.proof, *view.meter], 20, 4.5)
    pdf.set_font("Courier", "", 5)  # the records themselves, for any OCMF checker
    for record in view.records:
        pdf.multi_cell(0, 2.5, _ascii(record), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
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
