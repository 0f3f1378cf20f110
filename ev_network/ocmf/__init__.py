"""Signed meter readings in the Open Charge Metering Format (OCMF, S.A.F.E. e.V.).

A record is ``OCMF|{payload}|{signature}``: the meter signs the payload bytes exactly as written
(ECDSA secp256r1 over SHA-256 unless SA says otherwise; the signature DER-encoded, hex unless SE says
base64). In OCPP 1.6 a charger sends it in a SampledValue with ``format: SignedData``, either raw or
wrapped in the OCA application note's JSON (OCPP 2.0.1's SignedMeterValueType carried in 1.6)::

    {"signedMeterData": "<OCMF|... or its base64>", "signingMethod": "", "encodingMethod": "OCMF",
     "publicKey": "<base64 or hex>"}

Chargers in the field also write ``signedMeterValue`` for the data. A key that arrives with a reading is
never trusted: :func:`verify` checks against a key the caller got elsewhere (the one registered on chain).

    record = parse(sampled_value)                         # OCMFError on anything malformed
    begin = signed_record(meter_value, "Transaction.Begin")   # from MeterValues / StopTransaction
    verify(record, station.meter_public_key)              # OCMFError unless that key signed it
    settlement = signed_settlement(session_id, begin, end, station.meter_public_key)
    escrow.settle_signed(settlement)        # [Begin, End], or [End] alone when it holds both readings

The parts: :mod:`~ev_network.ocmf.records` (parsing), :mod:`~ev_network.ocmf.keys` (meter keys, signatures),
:mod:`~ev_network.ocmf.settlement` (the escrow's SignedSettlement); their public names are here.
"""

from ev_network.ocmf.keys import CURVE_ORDER, fingerprint, low_s, public_key, registry_key, verify, verify_settled
from ev_network.ocmf.records import (
    ALGORITHM,
    END_REASONS,
    OCMFError,
    Reading,
    Reason,
    Record,
    parse,
    session_id_tag,
    signed_record,
)
from ev_network.ocmf.settlement import holds_both_readings, meter_record, signed_settlement

__all__ = [
    "ALGORITHM",
    "CURVE_ORDER",
    "END_REASONS",
    "OCMFError",
    "Reading",
    "Reason",
    "Record",
    "fingerprint",
    "holds_both_readings",
    "low_s",
    "meter_record",
    "parse",
    "public_key",
    "registry_key",
    "session_id_tag",
    "signed_record",
    "signed_settlement",
    "verify",
    "verify_settled",
]
