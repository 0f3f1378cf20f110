"""The meter's proof on an invoice (issue 12, "no proof, no pay"): the signed OCMF Begin and End records
a metered station's session was settled on, the meter key as registered on chain, and the wallet's own
verification of both records against that key.

Everything comes from the chain: the records from the settle transaction's input
(:meth:`ev_network.contracts.Escrow.signed_settlement_of`), the key the registry held when the session
started (the key that settled it, even if the station rotated its key since). A meter that writes both
readings in one record has that record as Begin and End. Each record is written back as an OCMF text (``OCMF|payload|{"SA":...,"SD":...}``, the signature
DER in hex), which any OCMF checker (the S.A.F.E. transparency software, pyocmf) reads, and which
:func:`check_proof` re-checks offline from the invoice JSON alone. A station without a meter key has no
proof: its invoice says the reading is the operator's.
"""

from __future__ import annotations

import json
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pydantic import BaseModel
from web3.logs import DISCARD

from ev_network import ocmf
from ev_network.contracts import Escrow
from ev_network.units import format_time
from wallet.errors import WalletError

VERIFIED = "both records verified against the meter key registered on chain"


class SignedReading(BaseModel):
    """One signed record: its OCMF text and the billed reading it carries."""

    context: str  # Transaction.Begin / Transaction.End
    record: str  # OCMF|{payload}|{signature}
    reading_wh: int
    time: str
    meter_serial: str | None
    pagination: str


class MeterProof(BaseModel):
    """The signed records of a settled session, the registered key and the wallet's verification."""

    meter_public_key: str  # hex, as registered on chain (04 || x || y) when the session was settled
    begin: SignedReading
    end: SignedReading
    verified: bool
    result: str  # VERIFIED, or why not

    @property
    def energy_wh(self) -> int:
        return self.end.reading_wh - self.begin.reading_wh


def ocmf_text(payload: bytes, r: bytes, s: bytes) -> str:
    """The OCMF record of a payload and signature as the escrow received them."""
    der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    signature = json.dumps({"SA": ocmf.ALGORITHM, "SD": der.hex().upper()}, separators=(",", ":"))
    return f"OCMF|{payload.decode()}|{signature}"


def meter_proof(escrow: Escrow, session_id: int, station_id: int, settle_tx: str) -> MeterProof | None:
    """The proof of a session settled by ``settle_tx`` (None: settled the plain way, no signed records)."""
    settlement = escrow.signed_settlement_of(settle_tx, session_id)
    if settlement is None:
        return None
    receipt = escrow.w3.eth.get_transaction_receipt(settle_tx)
    settled = escrow.contract.events.SessionSettled().process_receipt(receipt, errors=DISCARD)
    started_at = next(e["args"]["startedAt"] for e in settled if e["args"]["sessionId"] == session_id)
    key = escrow.meter_key_at(station_id, started_at, receipt["blockNumber"])
    records = [ocmf_text(payload, r, s) for payload, r, s, _ in settlement[2]]
    return check_proof(key.hex(), records[0], records[-1])


def check_proof(key_hex: str, begin: str, end: str) -> MeterProof:
    """Verify the two records against the key (offline); the result says what failed, if anything."""
    readings = [_reading(begin, "Transaction.Begin"), _reading(end, "Transaction.End")]
    verified, result = True, VERIFIED
    try:
        for text in (begin, end):
            ocmf.verify(ocmf.parse(text), bytes.fromhex(key_hex))
    except (ocmf.OCMFError, ValueError) as error:
        verified, result = False, str(error)
    return MeterProof(meter_public_key=key_hex, begin=readings[0], end=readings[1], verified=verified, result=result)


def recheck(proof: MeterProof) -> MeterProof:
    """The proof verified again from its own records and key (e.g. from an invoice JSON file)."""
    return check_proof(proof.meter_public_key, proof.begin.record, proof.end.record)


def _reading(text: str, context: str) -> SignedReading:
    record = ocmf.parse(text)
    reading = record.reading(ocmf.Reason.BEGIN if context.endswith("Begin") else ocmf.Reason.END)
    return SignedReading(
        context=context,
        record=text,
        reading_wh=reading.wh,
        time=reading.time,
        meter_serial=record.serial,
        pagination=record.pagination,
    )


def check_invoice_proof(proof: MeterProof | None, session_id: int, meter_start: int, meter_stop: int) -> MeterProof:
    """Re-check an invoice's proof offline: both signatures against the key it names, the records of this
    session (the ID its meter signed), and the billed readings equal to the signed ones. WalletError
    naming the first problem."""
    if proof is None:
        raise WalletError("the invoice carries no signed meter records (a station without a meter key)")
    checked = recheck(proof)
    if not checked.verified:
        raise WalletError(f"meter records NOT verified: {checked.result}")
    tag = ocmf.session_id_tag(session_id)
    for reading in (checked.begin, checked.end):
        if ocmf.parse(reading.record).identification != tag:
            raise WalletError(f"meter record {reading.pagination} is not of this session (ID is not {tag})")
    if (checked.begin.reading_wh, checked.end.reading_wh) != (meter_start, meter_stop):
        raise WalletError(
            f"the invoice bills {meter_start} -> {meter_stop} Wh, the meter signed "
            f"{checked.begin.reading_wh} -> {checked.end.reading_wh} Wh"
        )
    return checked


def verdict_rows(proof: MeterProof | None) -> list[tuple[str, str]]:
    """The meter's verdict on an invoice: (label, value) rows, the label only on the first."""
    if proof is None:
        return [("Meter", "not signed: the station has no meter key on chain; the reading is the operator's")]
    mark = "VERIFIED" if proof.verified else "NOT VERIFIED"
    return [
        ("Meter", f"{mark}: {proof.result}"),
        ("", f"serial {proof.begin.meter_serial}, key {proof.meter_public_key[:20]}...{proof.meter_public_key[-8:]}"),
        ("", f"Begin {proof.begin.reading_wh} Wh at {meter_time(proof.begin.time)} ({proof.begin.pagination})"),
        ("", f"End   {proof.end.reading_wh} Wh at {meter_time(proof.end.time)} ({proof.end.pagination})"),
    ]


CLOCK = {"U": "not synchronised", "I": "informative", "R": "relative"}  # OCMF's time status, S aside


def meter_time(tm: str) -> str:
    """A signed record's time (OCMF ``TM``: ``2018-07-24T13:22:04,000+0000 S``) in the time format of the
    rest of the invoice, with the meter clock's status unless it was synchronised (S); as written when it
    is not in OCMF's form (the record itself keeps it as signed)."""
    stamp, _, status = tm.partition(" ")
    try:
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S,%f%z")
    except ValueError:
        return tm
    shown = format_time(moment.timestamp())
    return shown if status == "S" else f"{shown} (meter clock {CLOCK.get(status, 'status ' + repr(status))})"


def labelled(rows: list[tuple[str, str]]) -> list[str]:
    """Rows as terminal lines, values aligned: ``Meter     VERIFIED: ...``."""
    return [f"{label:<10}{value}" for label, value in rows]


def describe(proof: MeterProof | None) -> list[str]:
    """The proof's lines on the terminal (``ev-wallet verify``)."""
    return labelled(verdict_rows(proof))
