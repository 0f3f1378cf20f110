"""The escrow's SignedSettlement from OCMF records: what the escrow will check, checked here first (so a bad
record is refused before any gas is spent), and the byte offsets the escrow reads each field at. See
:mod:`ev_network.ocmf`."""

from __future__ import annotations

import re

from ev_network.ocmf.keys import low_s, verify
from ev_network.ocmf.records import END_REASONS, OCMFError, Reading, Reason, Record, session_id_tag, shown

OFFSET_FIELDS = ("ID", "MS", "PG", "TX", "RV", "RU")  # the escrow's order (OCMF.Field)
PAGE = re.compile(r"T([0-9]{1,30})")  # a transaction page: "T" and ASCII digits, as the escrow reads it


def meter_record(record: Record, reason: Reason | None = None) -> tuple[bytes, bytes, bytes, int]:
    """The escrow's MeterRecord (payload, r, s, offsets) billing the ``reason`` reading of ``record``; with no
    ``reason``, both readings of a record that holds Begin and End (the one-record shape)."""
    payload = record.payload
    if len(payload) >= 1 << 16:
        raise OCMFError(f"record of {len(payload)} bytes: the escrow reads payloads under 64 KiB")
    data_start = payload.find(b'"RD":')
    head = payload[:data_start] if data_start >= 0 else payload
    offsets = 0
    for i, name in enumerate(OFFSET_FIELDS[:3]):
        offsets |= _key_offset(record, head, name, 0, len(head)) << (16 * i)
    reasons = [reason] if reason is not None else [Reason.BEGIN, Reason.END]
    for n, which in enumerate(reasons):
        offsets |= _reading_offsets(record, which, data_start) << (48 + 48 * n)
    return (payload, *low_s(record.signature), offsets)


def holds_both_readings(record: Record) -> bool:
    """Whether ``record`` carries a Begin and an End reading (the one-record shape: one signature per session)."""
    reasons = {reading.reason for reading in record.readings}
    return Reason.BEGIN.value in reasons and bool(reasons & END_REASONS)


def signed_settlement(session_id: int, begin: Record | None, end: Record, key: str | bytes) -> tuple:
    """The escrow's SignedSettlement for ``session_id``, after checking what the escrow will check, so a
    bad record is refused here, before any gas is spent. Raises OCMFError naming the problem. An ``end``
    record that holds both readings settles alone (one record, one signature: the cheaper shape, ``begin``
    unused); otherwise ``begin`` is the Begin record."""
    if holds_both_readings(end):
        _check_for_session(end, session_id, key)
        first, last = end.reading(Reason.BEGIN), end.reading(Reason.END)
        _page(end)
        if end.readings.index(last) < end.readings.index(first):
            raise OCMFError(f"record {end.name}: its End reading comes before its Begin reading")
        _check_not_below(first, last)
        return (session_id, last.wh, [meter_record(end)])
    if begin is None:
        raise OCMFError("no Begin record, and the End record does not hold the Begin reading")
    for record in (begin, end):
        _check_for_session(record, session_id, key)
    if begin.serial != end.serial:
        raise OCMFError(f"Begin and End come from different meters ({shown(begin.serial)} and {shown(end.serial)})")
    first, last = begin.reading(Reason.BEGIN), end.reading(Reason.END)
    if _page(end) <= _page(begin):
        raise OCMFError(f"End's pagination {end.name} does not follow Begin's {begin.name}")
    _check_not_below(first, last)
    return (session_id, last.wh, [meter_record(begin, Reason.BEGIN), meter_record(end, Reason.END)])


def _page(record: Record) -> int:
    page = PAGE.fullmatch(record.pagination)
    if page is None:
        raise OCMFError(f"pagination {record.name!r} is not a transaction page (T<n>)")
    return int(page.group(1))


def _entry_span(payload: bytes, reading: Reading, data_start: int) -> tuple[int, int]:
    """Byte span of the RD entry holding ``reading`` (found by its reason)."""
    at = payload.find(f'"TX":"{reading.reason}"'.encode(), data_start)
    if at < 0:
        raise OCMFError(f"reading {reading.reason} at {reading.time} not found in the payload")
    return payload.rfind(b"{", 0, at), payload.find(b"}", at) + 1


def _key_offset(record: Record, within: bytes, name: str, start: int, end: int) -> int:
    """Offset of the compact key ``"name":`` in ``within[start:end]``; OCMFError if absent or spaced."""
    key = f'"{name}":'.encode()
    at = within.find(key, start, end)
    if at < 0 or within[at + len(key) : at + len(key) + 1] == b" ":
        raise OCMFError(f"record {record.name}: no compact {name} field for the escrow to read")
    return at


def _reading_offsets(record: Record, reason: Reason, data_start: int) -> int:
    """TX, RV, RU offsets (16 bits each) of the ``reason`` reading of ``record``."""
    payload = record.payload
    entry_start, entry_end = _entry_span(payload, record.reading(reason), data_start)
    tx, rv, ru = (_key_offset(record, payload, name, entry_start, entry_end) for name in OFFSET_FIELDS[3:])
    if not tx < rv < ru:
        raise OCMFError(f"record {record.name}: the escrow needs TX, RV, RU in that order in a reading")
    return tx | rv << 16 | ru << 32


def _check_for_session(record: Record, session_id: int, key: str | bytes) -> None:
    verify(record, key)
    if record.identification != session_id_tag(session_id):
        raise OCMFError(f"record {record.name}: ID {shown(record.identification)!r} does not name this session")


def _check_not_below(first: Reading, last: Reading) -> None:
    if last.wh < first.wh:
        raise OCMFError(f"End reading {last.value} {last.unit} is below Begin's {first.value} {first.unit}")
