"""The transaction record: what the Core Client logs of every OCPP transaction, how a record is hashed
into the operator's hash-linked log, the Merkle tree an anchor commits to, and the verification of an
exported record against the chain (the RecordAnchor contract), trusting nothing else.

Hashing (all keccak256, ABI encoding as Solidity's ``abi.encode``):

- ``id_tag_hash = keccak256(salt ‖ upper(idTag) as UTF-8)`` with a random 32-byte salt per record: the
  record never holds the tag. An MSP checks its own driver's record by hashing its tag with the salt
  of the exported record.
- ``record_hash = keccak256(abi.encode(chargePointId, connector, transactionId, salt, idTagHash,
  startTime, stopTime, meterStart, meterStop, stopReason, signedMeterData))``.
- the leaf of log index ``i`` links to the leaf before it (the hash link; zero for index 0):
  ``leaf_i = keccak256(keccak256(abi.encode(uint256 i, bytes32 leaf_{i-1}, bytes32 record_hash_i)))``,
  the double-hashed leaf of OpenZeppelin's StandardMerkleTree with leaf encoding
  ``["uint256", "bytes32", "bytes32"]``.
- the anchor's root is StandardMerkleTree's over the range's leaves (sorted leaves, sorted-pair keccak),
  so OpenZeppelin's ``MerkleProof`` checks a proof on chain too (``RecordAnchor.verify``).

Because a leaf holds its index and its predecessor, a record changed, dropped or moved after anchoring
no longer yields a leaf of the anchored tree.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from web3 import Web3
from web3.logs import DISCARD

from ev_network.contracts import Escrow, _Wrapper
from ev_network.errors import ContractRevert, EVNetworkError, read_json_model
from ev_network.merkle import Hex32, bytes32, hex32, process_proof
from ev_network.tx import TxSender, call_view

ZERO = "0x" + "00" * 32
Bytes32 = Annotated[Hex32, Field(pattern=r"^0x[0-9a-fA-F]{64}$")]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]
EXPORT_FORMAT = "evn-transaction-record/1"


class RecordError(EVNetworkError):
    """A record that cannot be logged, exported or verified."""


class NotAnchored(RecordError):
    """The record is not (yet) covered by an anchor on chain."""


class VerificationFailed(RecordError):
    """The record does not match what the chain holds: changed, dropped or reordered, or a forged anchor."""


def new_salt() -> Hex32:
    return hex32(secrets.token_bytes(32))


def id_tag_hash(salt: Hex32, id_tag: str) -> Hex32:
    """The salted hash of an OCPP idTag (case-insensitive in OCPP 1.6, so upper-cased first)."""
    return hex32(keccak(bytes32(salt) + id_tag.upper().encode()))


def unix_seconds(timestamp: datetime | str | int | float) -> int:
    """An OCPP timestamp (ISO 8601 text or datetime; naive means UTC) or Unix time, as whole seconds."""
    if isinstance(timestamp, int | float):
        return int(timestamp)
    if isinstance(timestamp, str):
        try:
            timestamp = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError(f"timestamp {timestamp!r} is not ISO 8601") from None
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return int(timestamp.timestamp())


class Record(BaseModel):
    """One OCPP transaction as the Core Client saw it. Times are Unix seconds (UTC), meters Wh."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    charge_point_id: str = Field(min_length=1, max_length=48)
    connector: int = Field(ge=0, lt=2**32)
    transaction_id: int = Field(ge=-(2**63), lt=2**63)
    id_tag_salt: Bytes32
    id_tag_hash: Bytes32
    start_time: int = Field(ge=0, lt=2**64)
    stop_time: int = Field(ge=0, lt=2**64)
    meter_start: int = Field(ge=0, lt=2**64)
    meter_stop: int = Field(ge=0, lt=2**64)
    stop_reason: str = ""
    signed_meter_data: str = ""

    @classmethod
    def checked(cls, **fields: Any) -> Record:
        """A Record, or a one-line RecordError naming what it cannot hold (for values from a charge point)."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise RecordError(f"transaction {fields.get('transaction_id')}: not a valid record: {problems}") from None

    def encoded(self) -> bytes:
        """The canonical encoding (ABI), the same in any language with an ABI encoder."""
        types = ["string", "uint32", "int64", "bytes32", "bytes32"] + ["uint64"] * 4 + ["string", "string"]
        values = [
            self.charge_point_id,
            self.connector,
            self.transaction_id,
            bytes32(self.id_tag_salt),
            bytes32(self.id_tag_hash),
            self.start_time,
            self.stop_time,
            self.meter_start,
            self.meter_stop,
            self.stop_reason,
            self.signed_meter_data,
        ]
        return encode(types, values)

    def hash(self) -> Hex32:
        return hex32(keccak(self.encoded()))

    def matches_id_tag(self, id_tag: str) -> bool:
        """Whether this record is of ``id_tag`` (what an MSP checks with its own driver's tag)."""
        return bytes32(id_tag_hash(self.id_tag_salt, id_tag)) == bytes32(self.id_tag_hash)


def leaf_hash(index: int, previous: Hex32, record_hash: Hex32) -> Hex32:
    """The log entry's leaf, OpenZeppelin StandardMerkleTree style (double keccak of the ABI encoding)."""
    inner = keccak(encode(["uint256", "bytes32", "bytes32"], [index, bytes32(previous), bytes32(record_hash)]))
    return hex32(keccak(inner))


@dataclass(frozen=True)
class Anchor:
    """One anchor as the contract stores it."""

    operator: str
    anchor_id: int
    root: Hex32
    first_index: int
    count: int
    timestamp: int
    block: int

    @property
    def last_index(self) -> int:
        return self.first_index + self.count - 1

    def covers(self, index: int) -> bool:
        return self.first_index <= index <= self.last_index


class RecordAnchor(_Wrapper):
    """The RecordAnchor contract of a deployment."""

    def __init__(self, w3: Web3, address: str, sender: TxSender | None = None) -> None:
        super().__init__(w3, address, "RecordAnchor", sender)

    def with_sender(self, sender: TxSender) -> RecordAnchor:
        return RecordAnchor(self.w3, self.address, sender)

    def anchor_of(self, operator: str, anchor_id: int) -> Anchor:
        root, first, count, timestamp, block = self._view("anchorOf", to_checksum_address(operator), anchor_id)
        return Anchor(to_checksum_address(operator), anchor_id, hex32(root), first, count, timestamp, block)

    def anchor_count(self, operator: str) -> int:
        return self._view("anchorCount", to_checksum_address(operator))

    def next_index(self, operator: str) -> int:
        return self._view("nextIndex", to_checksum_address(operator))

    def registry(self) -> str:
        return self._view("registry")

    def verify_on_chain(self, operator: str, anchor_id: int, proof: list[Hex32], leaf: Hex32) -> bool:
        return self._view(
            "verify", to_checksum_address(operator), anchor_id, [bytes32(p) for p in proof], bytes32(leaf)
        )

    def anchor(self, root: Hex32, first_index: int, count: int) -> dict:
        """Send one anchor and wait for it; return the receipt."""
        return self._send(self.contract.functions.anchor(bytes32(root), first_index, count), True)

    def anchored_from(self, receipt: dict) -> Anchor:
        """The anchor an ``anchor`` receipt made (from its Anchored event and block)."""
        events = self.contract.events.Anchored().process_receipt(receipt, errors=DISCARD)
        if not events:
            raise RecordError("receipt holds no Anchored event")
        args = events[0]["args"]
        return self.anchor_of(args["operator"], args["anchorId"])

    def _view(self, name: str, *args: object) -> Any:
        return call_view(self.contract.functions[name](*args))


class AnchorRef(BaseModel):
    """Where an exported record's anchor lives (the verifier re-reads all of it from the chain)."""

    chain_id: int
    contract: Address
    operator: Address
    anchor_id: int
    root: Bytes32
    first_index: int
    count: int
    block: int
    timestamp: int


class RecordExport(BaseModel):
    """An exported record: the record, its place in the log, and (once anchored) its inclusion proof."""

    format: str = EXPORT_FORMAT
    record: Record
    index: int = Field(ge=0, lt=2**64)
    previous: Bytes32
    leaf: Bytes32
    operator: Address
    anchor: AnchorRef | None = None
    proof: list[Bytes32] = Field(default_factory=list, max_length=64)

    @classmethod
    def load(cls, path: Path) -> RecordExport:
        """The export in the file ``path``, or a one-line RecordError naming the file and what is wrong."""
        return read_json_model(cls, path, RecordError, "record export")


@dataclass(frozen=True)
class Verified:
    """A record the chain vouches for: in ``anchor``, made by its operator (registered as ``operator_name``)."""

    index: int
    anchor: Anchor
    operator_name: str
    station_id: int | None  # the charge point's station on chain; None when it is not registered there

    def describe(self, record: Record) -> str:
        """Two lines: what the record says, and where the chain vouches for it."""
        when = datetime.fromtimestamp(self.anchor.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        station = "" if self.station_id is None else f", station {self.station_id}"
        stopped = datetime.fromtimestamp(record.stop_time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"transaction {record.transaction_id} at {record.charge_point_id}/{record.connector}{station}: "
            f"{record.meter_stop - record.meter_start} Wh, stopped {stopped} ({record.stop_reason or 'no reason'})\n"
            f"record {self.index} is in anchor {self.anchor.anchor_id} of operator {self.anchor.operator} "
            f"({self.operator_name}), anchored {when} in block {self.anchor.block} "
            f"(records {self.anchor.first_index}-{self.anchor.last_index}, root {self.anchor.root})"
        )


def verify_export(exported: RecordExport, anchors: RecordAnchor, escrow: Escrow) -> Verified:
    """Check ``exported`` against the chain only: its leaf is recomputed from the record, its proof must
    lead to the root the contract holds for the operator's anchor covering its index, the operator must be
    registered in the deployment's registry, and a charge point registered there must be one of the
    operator's stations. Raises NotAnchored or VerificationFailed."""
    if exported.format != EXPORT_FORMAT:
        raise VerificationFailed(f"unknown record format {exported.format!r} (this verifier reads {EXPORT_FORMAT})")
    operator, index = to_checksum_address(exported.operator), exported.index
    leaf = leaf_hash(index, exported.previous, exported.record.hash())
    next_index = anchors.next_index(operator)
    if index >= next_index:
        covered = f"records 0-{next_index - 1}" if next_index else "no records yet"
        raise NotAnchored(f"record {index} of operator {operator} is not anchored yet (its anchors cover {covered})")
    ref = exported.anchor
    if ref is None:
        raise NotAnchored(f"record {index} has been anchored since it was exported: export it again for its proof")
    if to_checksum_address(ref.contract) != anchors.address or ref.chain_id != anchors.w3.eth.chain_id:
        raise VerificationFailed(
            f"the record names anchor contract {ref.contract} on chain {ref.chain_id}, not this deployment's "
            f"{anchors.address}"
        )
    try:
        anchor = anchors.anchor_of(operator, ref.anchor_id)
    except ContractRevert as exc:
        raise VerificationFailed(f"operator {operator} has no anchor {ref.anchor_id} ({exc})") from None
    if not anchor.covers(index):
        raise VerificationFailed(
            f"anchor {anchor.anchor_id} covers records {anchor.first_index}-{anchor.last_index}, not record {index}"
        )
    if process_proof(leaf, exported.proof) != anchor.root:
        raise VerificationFailed(
            f"record {index} does not match anchor {anchor.anchor_id} of operator {operator}: "
            "it was changed, dropped or reordered after anchoring, or its proof is wrong"
        )
    registered = escrow.operator_of(operator)
    if not registered.registered:
        raise VerificationFailed(f"{operator} is not a registered operator of this deployment")
    station = escrow.station_by_charge_point(exported.record.charge_point_id)
    if station is not None and station.operator != operator:  # unregistered: a station only its CSMS knows
        raise VerificationFailed(
            f"charge point {exported.record.charge_point_id} is station {station.station_id} of operator "
            f"{station.operator}, not of {operator}, who anchored this record"
        )
    return Verified(index, anchor, registered.name, station and station.station_id)
