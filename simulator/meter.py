"""The simulated charge point's signing meter: OCMF Begin and End records signed with a P-256 key.

One meter per charge point (one key, one serial, one pagination counter), reading each connector's
register. Records go out the way calibration-law chargers send them in OCPP 1.6: a SampledValue with
``format: SignedData`` whose value is the OCA application note's JSON around the OCMF text, in
MeterValues (context Transaction.Begin) and in StopTransaction's transactionData (Transaction.End).

The key is derived from the charge point id and a seed, so a test or the demo can register the public key
before the charge point connects (``SigningMeter.for_charge_point(cp_id).public_key_hex``). A mode makes
the meter misbehave for tests: ``unsigned`` sends no signed values, ``tampered`` changes the reading after
signing, ``foreign`` signs with a key that is not the registered one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from enum import StrEnum

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.v16 import call, datatypes
from ocpp.v16.enums import Measurand, ReadingContext, UnitOfMeasure, ValueFormat

from ev_network.ocmf import CURVE_ORDER, Reason

DEFAULT_SEED = b"evn-simulated-meter"


class MeterMode(StrEnum):
    SIGNED = "signed"
    UNSIGNED = "unsigned"
    TAMPERED = "tampered"
    FOREIGN = "foreign"


def _key(seed: bytes) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha256(seed).digest(), "big") % (CURVE_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def ocmf_time(moment: datetime) -> str:
    """OCMF's TM: ``2018-07-24T13:22:04,000+0000 S`` (milliseconds after a comma; S = synchronised)."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S,") + f"{moment.microsecond // 1000:03d}+0000 S"


class SigningMeter:
    """A P-256 signing meter: ``record`` makes a signed OCMF record of a register reading."""

    def __init__(self, serial: str, gateway: str, key: ec.EllipticCurvePrivateKey, mode: MeterMode) -> None:
        """``serial`` is the meter's (MS), ``gateway`` the charge point's serial (GS)."""
        self.serial, self.gateway, self.mode = serial, gateway, MeterMode(mode)
        self._key = key
        self._signer = _key(b"foreign:" + serial.encode()) if self.mode is MeterMode.FOREIGN else key
        self._page = 0

    @classmethod
    def for_charge_point(
        cls, cp_id: str, mode: MeterMode | str = MeterMode.SIGNED, seed: bytes = DEFAULT_SEED
    ) -> SigningMeter:
        return cls(
            f"SIM{hashlib.sha256(cp_id.encode()).hexdigest()[:10].upper()}", cp_id, _key(seed + cp_id.encode()), mode
        )

    def variant(self, mode: MeterMode | str, serial: str | None = None) -> SigningMeter:
        """This meter's key in another mode (or under another serial), for tests."""
        return SigningMeter(serial or self.serial, self.gateway, self._key, mode)

    @property
    def public_key_der(self) -> bytes:
        """The registered key, as meters publish it (DER SubjectPublicKeyInfo)."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def public_key_hex(self) -> str:
        return self.public_key_der.hex().upper()

    def record(self, reason: Reason, energy_wh: int, id_tag: str, moment: datetime | None = None) -> str:
        """``OCMF|{payload}|{signature}`` for a Begin or End reading of ``energy_wh``."""
        return self._signed(id_tag, [(reason, energy_wh)], moment)

    def transaction_record(self, begin_wh: int, end_wh: int, id_tag: str, moment: datetime | None = None) -> str:
        """One record holding both readings of a transaction (Begin and End), as meters that sign once per
        transaction write it at its end."""
        return self._signed(id_tag, [(Reason.BEGIN, begin_wh), (Reason.END, end_wh)], moment)

    def _signed(self, id_tag: str, values: list[tuple[Reason, int]], moment: datetime | None) -> str:
        """A signed record of ``values`` on the meter's next page, with the fields a real meter writes (model,
        firmware, charge point, reading type, so about 350 bytes for one reading, as an Iskra WM3M4C's)."""
        self._page += 1
        time = ocmf_time(moment or datetime.now(timezone.utc))
        readings = [
            {"TM": time, "TX": reason.value, "RV": wh / 1000, "RI": "1-b:1.8.0", "RU": "kWh", "RT": "AC", "ST": "G"}
            for reason, wh in values
        ]
        payload = {
            "FV": "1.0",
            "GI": "EVN-SIM OcppChargePoint",
            "GS": self.gateway,
            "GV": "1.0.0",
            "PG": f"T{self._page}",
            "MV": "EVN",
            "MM": "SIM-M1",
            "MS": self.serial,
            "MF": "1.0",
            "IS": True,
            "IT": "CENTRAL",
            "ID": id_tag,
            "CT": "EVSEID",
            "CI": self.gateway,
            "RD": readings,
        }
        text = json.dumps(payload, separators=(",", ":"))
        signature = self._signer.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
        if self.mode is MeterMode.TAMPERED:
            readings[-1]["RV"] = (values[-1][1] + 1000) / 1000  # a kWh more, after signing
            text = json.dumps(payload, separators=(",", ":"))
        return f"OCMF|{text}|" + json.dumps({"SA": "ECDSA-secp256r1-SHA256", "SD": signature.hex().upper()})

    def sampled_value(self, reason: Reason, energy_wh: int, id_tag: str) -> datatypes.SampledValue | None:
        """The SignedData SampledValue of a Begin or End reading (None for an unsigned meter)."""
        if self.mode is MeterMode.UNSIGNED:
            return None
        wrapper = {
            "signedMeterData": base64.b64encode(self.record(reason, energy_wh, id_tag).encode()).decode(),
            "signingMethod": "ECDSA-secp256r1-SHA256",
            "encodingMethod": "OCMF",
            "publicKey": base64.b64encode(self.public_key_der).decode(),
        }
        context = ReadingContext.transaction_begin if reason is Reason.BEGIN else ReadingContext.transaction_end
        return datatypes.SampledValue(
            value=json.dumps(wrapper, separators=(",", ":")),
            context=context,
            format=ValueFormat.signed_data,
            measurand=Measurand.energy_active_import_register,
            unit=UnitOfMeasure.wh,
        )

    def begin_values(
        self, connector_id: int, transaction_id: int, energy_wh: int, id_tag: str
    ) -> call.MeterValues | None:
        """The MeterValues carrying a transaction's signed Begin record (None for an unsigned meter)."""
        sampled = self.sampled_value(Reason.BEGIN, energy_wh, id_tag)
        if sampled is None:
            return None
        value = datatypes.MeterValue(timestamp=_ocpp_now(), sampled_value=[sampled])
        return call.MeterValues(connector_id=connector_id, meter_value=[value], transaction_id=transaction_id)

    def end_value(self, energy_wh: int, id_tag: str, timestamp: str) -> datatypes.MeterValue | None:
        """The transactionData entry carrying a transaction's signed End record (None for an unsigned meter)."""
        sampled = self.sampled_value(Reason.END, energy_wh, id_tag)
        return None if sampled is None else datatypes.MeterValue(timestamp=timestamp, sampled_value=[sampled])


def _ocpp_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
