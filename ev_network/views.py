"""Calling a contract's view functions cheaply: each function's selector and ABI types are worked out once
(:func:`views_of`), a call is its calldata encoded with eth_abi, one ``eth_call`` to the node and the answer
decoded with eth_abi. web3's ContractFunction does all of that again on every call (the selector's keccak,
ABI validation, argument mapping, its middleware): about 8 ms of CPU a read, which under load made the
daemon's chain reads its busiest threads. Results are what web3 returns: one output as itself, several as a
list, structs as tuples, addresses checksummed. A revert raises :class:`ContractRevert` naming the contract's
error; a chain that cannot be reached, :class:`ChainUnavailable`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi import decode, encode
from eth_utils import function_abi_to_4byte_selector, to_checksum_address
from eth_utils.abi import collapse_if_tuple
from web3 import Web3

from ev_network.deployment import load_abi
from ev_network.errors import EVNetworkError, NodeError, chain_errors, endpoint_of
from ev_network.reverts import decode_revert


@dataclass(frozen=True)
class View:
    """One view function of an ABI: what calling it needs, computed once."""

    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    output_items: tuple[dict, ...]
    normalized: bool  # an address or an array among the outputs (web3 returns checksums, lists)

    @classmethod
    def of(cls, item: dict) -> View:
        outputs = tuple(collapse_if_tuple(o) for o in item["outputs"])
        return cls(
            name=item["name"],
            selector=function_abi_to_4byte_selector(item),
            inputs=tuple(collapse_if_tuple(i) for i in item["inputs"]),
            outputs=outputs,
            output_items=tuple(item["outputs"]),
            normalized=any("address" in o or "]" in o for o in outputs),
        )

    def calldata(self, args: Sequence[Any]) -> bytes:
        return self.selector + encode(self.inputs, args)

    def result(self, data: bytes) -> Any:
        """The decoded answer (one output: itself; several: a list)."""
        if not data and self.outputs:  # no code at the address, or a node that answered nothing
            raise EVNetworkError(f"{self.name}: the chain returned no data (is the contract deployed there?)")
        values = decode(self.outputs, data)
        if self.normalized:
            values = tuple(normalized(item, value) for item, value in zip(self.output_items, values, strict=True))
        return values[0] if len(values) == 1 else list(values)


def normalized(item: dict, value: Any) -> Any:
    """``value`` of ABI type ``item`` as web3 returns it: addresses (also inside tuples and arrays)
    checksummed, arrays as lists."""
    abi_type: str = item["type"]
    if abi_type.endswith("]"):
        element = {**item, "type": abi_type[: abi_type.rindex("[")]}
        return [normalized(element, v) for v in value]
    if abi_type == "tuple":
        return tuple(normalized(c, v) for c, v in zip(item["components"], value, strict=True))
    return to_checksum_address(value) if abi_type == "address" else value


@cache
def views_of(abi_name: str) -> dict[str, View]:
    """The view and pure functions of contract ``abi_name`` (an ABI shipped with the package), by name."""
    return {
        item["name"]: View.of(item)
        for item in load_abi(abi_name)
        if item["type"] == "function" and item.get("stateMutability") in ("view", "pure")
    }


def call(w3: Web3, address: str, view: View, args: Sequence[Any], block: Any = "latest") -> Any:
    """``view(*args)`` on the contract at ``address``, at ``block`` ("latest", "pending", a number)."""
    return view.result(eth_call(w3, address, view.calldata(args), block))


def call_many(w3: Web3, address: str, view: View, calls: Sequence[Sequence[Any]], block: Any = "latest") -> list[Any]:
    """``view(*args)`` for each ``args`` of ``calls``, in one JSON-RPC batch request: the answers in order, a
    call that reverted (or that the node refused) as its error (ContractRevert, NodeError), not raised. A chain
    that cannot be reached raises ChainUnavailable; a node that refuses the whole batch, NodeError."""
    if not calls:
        return []
    at = _block_id(block)
    requests = [("eth_call", [{"to": address, "data": "0x" + view.calldata(args).hex()}, at]) for args in calls]
    with chain_errors(w3):
        responses = w3.provider.make_batch_request(requests)  # type: ignore[arg-type]
    if not isinstance(responses, list) or len(responses) != len(calls):  # one error for the whole batch
        error = responses.get("error", responses) if isinstance(responses, dict) else responses
        raise NodeError(f"{endpoint_of(w3)} refused a batch of {len(calls)} eth_call: {error}")
    answers: list[Any] = []
    for response in responses:
        try:
            answers.append(view.result(_answer(w3, response)))
        except EVNetworkError as error:
            answers.append(error)
    return answers


def eth_call(w3: Web3, to: str, data: bytes, block: Any = "latest") -> bytes:
    """One ``eth_call`` of ``data`` to ``to``, straight to the node's provider; its answer's bytes."""
    with chain_errors(w3):
        response = w3.provider.make_request("eth_call", [{"to": to, "data": "0x" + data.hex()}, _block_id(block)])  # type: ignore[arg-type]
    return _answer(w3, response)


def _block_id(block: Any) -> Any:
    return hex(block) if isinstance(block, int) else block


def _answer(w3: Web3, response: Any) -> bytes:
    """The bytes an ``eth_call`` answered; its error as ContractRevert (a revert) or NodeError."""
    error = response.get("error")
    if error is None:
        return bytes.fromhex(str(response["result"]).removeprefix("0x"))
    if not isinstance(error, dict):
        raise NodeError(f"{endpoint_of(w3)} refused eth_call: {error}")
    revert_data = error.get("data")
    if isinstance(revert_data, str) or error.get("code") == 3 or "revert" in str(error.get("message", "")).lower():
        raise decode_revert(revert_data if isinstance(revert_data, str) else None)
    raise NodeError(f"{endpoint_of(w3)} refused eth_call: {error.get('message', error)}")
