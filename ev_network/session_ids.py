"""Session ids as the escrow makes them: a uint256 packing the driver, one of the driver's lanes and the
lane's sequence number, ``driver << 96 | lane << 16 | seq``.

Written in hex an id reads as the driver's address followed by the lane and the sequence number::

    0x70997970c51812dc3a010c7d01b50e0d17dc79c8 000000000000000000 00 0007   (driver, unused, lane 0, seq 7)

The full id is the canonical form (JSON, logs, the contract). People see a short label: ``7`` for the
seventh session of lane 0 and ``2/7`` on lane 2, which :func:`parse_session_id` turns back into an id
when the driver is known (the wallet's own account).
"""

from __future__ import annotations

import re

from web3 import Web3

LANES = 256
_SEQ_BITS, _LANE_SHIFT, _DRIVER_SHIFT = 16, 16, 96
_UNUSED_BITS = ((1 << 96) - 1) ^ ((1 << 24) - 1)
_LABEL = re.compile(r"^(?:(\d{1,3})/)?(\d{1,5})$")


def make_session_id(driver: str, lane: int, seq: int) -> int:
    """The id of session ``seq`` on ``lane`` of ``driver``."""
    if not 0 <= lane < LANES or not 0 < seq < 1 << _SEQ_BITS:
        raise ValueError(f"lane must be 0-{LANES - 1} and seq 1-{(1 << _SEQ_BITS) - 1}, got {lane}/{seq}")
    return int(driver, 16) << _DRIVER_SHIFT | lane << _LANE_SHIFT | seq


def driver_of(session_id: int) -> str:
    """The driver (checksummed address) encoded in ``session_id``."""
    return Web3.to_checksum_address((session_id >> _DRIVER_SHIFT).to_bytes(20, "big"))


def lane_of(session_id: int) -> int:
    return (session_id >> _LANE_SHIFT) & 0xFF


def seq_of(session_id: int) -> int:
    return session_id & 0xFFFF


def is_session_id(value: int) -> bool:
    """Whether ``value`` is shaped like a session id (a driver, no stray bits, a sequence number)."""
    return 0 < value < 1 << 256 and value >> _DRIVER_SHIFT != 0 and value & _UNUSED_BITS == 0 and seq_of(value) != 0


def hex_session_id(session_id: int) -> str:
    """The canonical text form: ``0x`` and 64 hex digits."""
    return f"0x{session_id:064x}"


def session_label(session_id: int) -> str:
    """The short label a driver sees: ``seq`` on lane 0, ``lane/seq`` otherwise."""
    lane, seq = lane_of(session_id), seq_of(session_id)
    return f"{lane}/{seq}" if lane else str(seq)


def label_of_driver(session_id: int) -> str:
    """The label with a short form of its driver, ``2/1 of 0x7099…79C8``: how an operator, who sees the
    sessions of many drivers, names the session its driver knows as ``2/1``."""
    driver = driver_of(session_id)
    return f"{session_label(session_id)} of {driver[:6]}…{driver[-4:]}"


def parse_session_id(text: str, driver: str | None = None) -> int:
    """A session id from its hex or decimal form, or from a label (``7``, ``2/7``) of ``driver``'s
    sessions; raises ValueError saying which forms are accepted."""
    text = text.strip()
    label = _LABEL.match(text)
    if label and driver is not None:
        return make_session_id(driver, int(label.group(1) or 0), int(label.group(2)))
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        value = -1
    if not is_session_id(value):
        forms = "a session id (0x and 64 hex digits)" + (", or a label such as 7 or 2/7" if driver else "")
        raise ValueError(f"{text!r} is not {forms}")
    return value
