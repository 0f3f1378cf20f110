"""Meter keys and signatures: a P-256 key from any form meters and the registry use, its fingerprint, and the
check that the registered key (never the record's own) signed a record. See :mod:`ev_network.ocmf`."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from ev_network.ocmf.records import ALGORITHM, OCMFError, Record, decode

CURVE_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def public_key(data: str | bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 key from any form meters and the registry use: DER SubjectPublicKeyInfo, 65 bytes
    04 || x || y, 33 bytes compressed (02/03 || x) or 64 bytes x || y, as bytes, hex or base64 (or PEM text)."""
    raw = data.encode() if isinstance(data, str) else data
    if not raw.strip():
        raise OCMFError("the meter key is empty")
    try:
        if raw.strip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(raw.strip())
        else:
            if all(32 <= c < 127 or c in b"\t\r\n" for c in raw):  # text: hex (0x, spaces, colons) or base64
                text = "".join(raw.decode().split()).removeprefix("0x").replace(":", "")
                raw = decode(text, "hex" if _is_hex(text.encode()) else "base64")
            key = _load_binary_key(raw)
    except (ValueError, TypeError):
        raise OCMFError(f"not a P-256 public key ({len(raw)} bytes)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise OCMFError("the meter key is not a P-256 (secp256r1) key")
    return key


def registry_key(key: str | bytes | ec.EllipticCurvePublicKey) -> bytes:
    """The key as the registry returns it: 65 bytes 04 || x || y."""
    key = key if isinstance(key, ec.EllipticCurvePublicKey) else public_key(key)
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def fingerprint(key: bytes) -> str:
    """A short name of a registered meter key (04 || x || y): the first 8 bytes of its SHA-256, as
    ``sha256:1a2b3c4d5e6f7a8b``; "plain" for no key."""
    return f"sha256:{hashlib.sha256(key).hexdigest()[:16]}" if key else "plain"


def verify(record: Record, key: str | bytes | ec.EllipticCurvePublicKey) -> None:
    """Raise OCMFError unless ``key`` (the registered one, never the record's own) signed ``record``."""
    if record.algorithm != ALGORITHM:
        raise OCMFError(f"signature algorithm {record.algorithm!r} is not {ALGORITHM}")
    key = key if isinstance(key, ec.EllipticCurvePublicKey) else public_key(key)
    try:
        key.verify(record.signature, record.payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise OCMFError(f"record {record.name} was not signed by the registered meter key") from None


def verify_settled(payload: bytes, r: bytes, s: bytes, key: str | bytes | ec.EllipticCurvePublicKey) -> None:
    """Like :func:`verify`, for a record as the escrow received it (a MeterRecord of a settleSigned
    transaction: the payload bytes and r, s), so a driver can re-check what was billed from the chain alone."""
    key = key if isinstance(key, ec.EllipticCurvePublicKey) else public_key(key)
    signature = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    try:
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise OCMFError("the settled record was not signed by the registered meter key") from None


def low_s(signature: bytes) -> tuple[bytes, bytes]:
    """(r, s) of a DER signature, s flipped to the lower half of the curve order (both verify; the escrow
    accepts only the lower)."""
    r, s = decode_dss_signature(signature)
    s = min(s, CURVE_ORDER - s)
    return r.to_bytes(32, "big"), s.to_bytes(32, "big")


def _is_hex(raw: bytes) -> bool:
    return all(c in b"0123456789abcdefABCDEF" for c in raw.strip())


def _load_binary_key(raw: bytes) -> Any:
    if len(raw) == 64:
        raw = b"\x04" + raw
    if (len(raw) == 65 and raw[0] == 4) or (len(raw) == 33 and raw[0] in (2, 3)):
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    return serialization.load_der_public_key(raw)
