"""A CDR's readings as the session service takes them: its energy in whole Wh, and its OCMF signed values
as the StopTransaction ``transactionData`` of OCPP."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

from core_client.ocpi.models import CDR
from core_client.ocpi.models.base import ci
from core_client.sessions.metering import BEGIN, END

CONTEXTS = {"START": BEGIN, "END": END}  # a SignedValue's nature -> the context of the record in OCPP


def wh(kwh: Decimal) -> int:
    """kWh as whole Wh (OCPI numbers carry 4 decimals: 0.1 Wh), rounded half up."""
    return int((kwh * 1000).to_integral_value(rounding="ROUND_HALF_UP"))


def transaction_data(cdr: CDR) -> list[dict[str, Any]]:
    """The CDR's OCMF signed values as the StopTransaction ``transactionData`` the signed meter rule reads
    (:mod:`core_client.sessions.metering`): nature Start -> ``Transaction.Begin``, End -> ``Transaction.End``,
    each the whole record ``OCMF|payload|signature`` (Base64 in ``signed_data``). Empty without OCMF data:
    at a station with a meter key that holds the session (no proof, no pay)."""
    signed = cdr.signed_data
    if signed is None or ci(signed.encoding_method) != "OCMF":
        return []
    readings = []
    for value in signed.signed_values:
        context = CONTEXTS.get(ci(value.nature))
        if context is None:
            continue
        try:
            record = base64.b64decode(value.signed_data, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            record = value.signed_data  # not Base64: the record as given (the rule refuses what it cannot read)
        stamp = (cdr.start_date_time if context == BEGIN else cdr.end_date_time).isoformat()
        readings.append(
            {"timestamp": stamp, "sampled_value": [{"value": record, "format": "SignedData", "context": context}]}
        )
    return readings
