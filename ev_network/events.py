"""Reading and decoding the escrow's events, in chain order, a block range at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eth_abi import decode
from eth_utils import event_abi_to_log_topic
from eth_utils.abi import collapse_if_tuple
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import Web3RPCError

from ev_network.contracts import SessionState
from ev_network.deployment import load_abi
from ev_network.errors import NodeError, chain_errors, endpoint_of
from ev_network.views import normalized

ESCROW_EVENTS = {item["name"]: item for item in load_abi("SessionEscrow") if item["type"] == "event"}
_TOPICS = {name: event_abi_to_log_topic(event) for name, event in ESCROW_EVENTS.items()}
_BY_TOPIC = {topic0: ESCROW_EVENTS[name] for name, topic0 in _TOPICS.items()}
#: The events that end a session, and the state each leaves it in. Storage forgets a session once its
#: lane holds a later one (it reads Closed); these events still say how it ended.
SESSION_ENDINGS = {
    "SessionSettled": SessionState.SETTLED,
    "SessionCancelled": SessionState.CANCELLED,
    "SessionExpired": SessionState.EXPIRED,
    "SessionRefunded": SessionState.CANCELLED,  # the operator refunded a started session in full
}


@dataclass(frozen=True)
class ChainEvent:
    """One decoded escrow event. ``args`` uses the contract's argument names (sessionId, driver, ...)."""

    name: str
    args: dict[str, Any]
    block_number: int
    log_index: int
    tx_hash: str

    @property
    def position(self) -> tuple[int, int]:
        """Where the event sits in the chain: (block, log index); a total order."""
        return (self.block_number, self.log_index)


@dataclass(frozen=True)
class _Layout:
    """An event's inputs as decoding needs them: the indexed ones in topic order with the type their topic
    decodes as (bytes32 for a string, bytes, array or struct: the topic holds only its hash), the others
    (in the data) with their types. Static topics side by side are their tuple's ABI encoding: one decode."""

    name: str
    indexed: tuple[dict, ...]
    topic_types: tuple[str, ...]
    plain: tuple[dict, ...]
    plain_types: tuple[str, ...]

    @classmethod
    def of(cls, event: dict) -> _Layout:
        indexed = tuple(i for i in event["inputs"] if i["indexed"])
        plain = tuple(i for i in event["inputs"] if not i["indexed"])
        return cls(
            name=event["name"],
            indexed=indexed,
            topic_types=tuple(_topic_type(collapse_if_tuple(i)) for i in indexed),
            plain=plain,
            plain_types=tuple(collapse_if_tuple(i) for i in plain),
        )


def _topic_type(abi_type: str) -> str:
    hashed = abi_type in ("string", "bytes") or abi_type.endswith("]") or abi_type.startswith("(")
    return "bytes32" if hashed else abi_type


_LAYOUTS = {topic0: _Layout.of(event) for topic0, event in _BY_TOPIC.items()}


def topic(name: str) -> str:
    """topic0 of escrow event ``name``."""
    return "0x" + _TOPICS[name].hex()


def indexed_topic(value: int | str) -> str:
    """A topic value for an indexed uint or address argument."""
    if isinstance(value, str):
        return "0x" + value.lower().removeprefix("0x").rjust(64, "0")
    return "0x" + value.to_bytes(32, "big").hex()


class EventReader:
    """Fetches escrow events between two blocks, decoded and in chain order."""

    def __init__(self, w3: Web3, escrow_address: str, chunk: int = 5000) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(escrow_address)
        self.chunk = chunk

    def head(self) -> int:
        with chain_errors(self.w3):
            return self.w3.eth.block_number

    def fetch(
        self, from_block: int, to_block: int, names: list[str] | None = None, filters: list[Any] | None = None
    ) -> list[ChainEvent]:
        """Events named in ``names`` (all if None) in [from_block, to_block]; ``filters`` are extra
        topics after topic0 (e.g. ``[indexed_topic(session_id)]``)."""
        return list(self.iter(from_block, to_block, names, filters))

    def outcome(self, session_id: int, from_block: int) -> SessionState | None:
        """How session ``session_id`` ended (SETTLED, CANCELLED or EXPIRED), from its final event between
        ``from_block`` and the head; None if it has not ended."""
        found = self.fetch(from_block, self.head(), list(SESSION_ENDINGS), [indexed_topic(session_id)])
        return SESSION_ENDINGS[found[-1].name] if found else None

    def iter(
        self, from_block: int, to_block: int, names: list[str] | None = None, filters: list[Any] | None = None
    ) -> Iterator[ChainEvent]:
        topic0 = [topic(n) for n in names] if names else None
        topics = [topic0, *(filters or [])] if (topic0 or filters) else None
        start = from_block
        while start <= to_block:
            end = min(start + self.chunk - 1, to_block)
            params: dict[str, Any] = {"address": self.address, "fromBlock": start, "toBlock": end}
            if topics:
                params["topics"] = topics
            with chain_errors(self.w3):
                try:
                    logs = self.w3.eth.get_logs(params)
                except Web3RPCError as exc:
                    where = f"{endpoint_of(self.w3)} refused the escrow's logs of blocks {start} to {end}"
                    raise NodeError(f"{where}: {rpc_message(exc)}") from None
            for entry in sorted(logs, key=lambda x: (x["blockNumber"], x["logIndex"])):
                yield decode_log(self.w3, entry)
            start = end + 1


def rpc_message(exc: Web3RPCError) -> str:
    """What the node said in a JSON-RPC error (its ``message``), else web3's text."""
    error = (exc.rpc_response or {}).get("error")
    return str(error.get("message", error)) if isinstance(error, dict) else str(exc.message)


def decode_log(w3: Web3, entry: Any) -> ChainEvent:
    """Decode one raw escrow log (``w3``: kept for callers; decoding needs no node)."""
    name, args = decode_args(entry)
    return ChainEvent(
        name=name,
        args=args,
        block_number=entry["blockNumber"],
        log_index=entry["logIndex"],
        tx_hash="0x" + bytes(HexBytes(entry["transactionHash"])).hex(),
    )


def decode_args(entry: Any) -> tuple[str, dict[str, Any]]:
    """(event name, arguments) of a raw escrow log, as web3 decodes them (addresses checksummed; an indexed
    string, bytes, array or struct as its topic, the hash the log holds), with eth_abi and the event's layout
    worked out once: web3's get_event_data and process_receipt work it out again for every log."""
    topics = [bytes(HexBytes(t)) for t in entry["topics"]]
    layout = _LAYOUTS[topics[0]]
    if len(topics) != len(layout.indexed) + 1:
        raise ValueError(f"{layout.name} log with {len(topics) - 1} indexed topics, expected {len(layout.indexed)}")
    args: dict[str, Any] = {}
    for item, value in zip(layout.indexed, decode(layout.topic_types, b"".join(topics[1:])), strict=True):
        args[item["name"]] = value if item["type"] != "address" else normalized(item, value)
    for item, value in zip(layout.plain, decode(layout.plain_types, bytes(HexBytes(entry["data"]))), strict=True):
        args[item["name"]] = normalized(item, value)
    return layout.name, args


def receipt_events(receipt: Any, escrow_address: str, name: str) -> list[dict[str, Any]]:
    """The arguments of each ``name`` event the escrow at ``escrow_address`` emitted in ``receipt``."""
    topic0, address = _TOPICS[name], Web3.to_checksum_address(escrow_address)
    return [
        decode_args(entry)[1]
        for entry in receipt["logs"]
        if entry["topics"] and bytes(HexBytes(entry["topics"][0])) == topic0 and entry["address"] == address
    ]
