"""Decoding revert data into a :class:`~ev_network.errors.ContractRevert` that names the contract's
custom error and its arguments (the errors of every contract's ABI, and Solidity's built-ins)."""

from __future__ import annotations

from functools import cache

from eth_abi import decode
from eth_utils import function_abi_to_4byte_selector, function_signature_to_4byte_selector, to_checksum_address

from ev_network.deployment import load_abi
from ev_network.errors import ContractRevert


@cache
def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {}
    for contract in ("SessionEscrow", "EVToken", "PlainToken", "RecordAnchor", "OperatorProfile", "PaymentMandates"):
        for item in load_abi(contract):
            if item["type"] != "error":
                continue
            table[function_abi_to_4byte_selector(item)] = (item["name"], [i["type"] for i in item["inputs"]])
    # Solidity's built-ins
    table[function_signature_to_4byte_selector("Error(string)")] = ("Error", ["string"])
    table[function_signature_to_4byte_selector("Panic(uint256)")] = ("Panic", ["uint256"])
    return table


def decode_revert(data: str | bytes | None) -> ContractRevert:
    """Turn revert data into a :class:`ContractRevert` naming the custom error and its arguments."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x")) if data.startswith("0x") else data.encode()
    if not data or len(data) < 4:
        return ContractRevert("", raw=(data or b"").hex())
    entry = _error_table().get(data[:4])
    if entry is None:
        return ContractRevert("", raw="0x" + data.hex())
    name, types = entry
    try:
        args = decode(types, data[4:])
        # addresses as checksummed strings, like web3 returns them everywhere else
        args = tuple(to_checksum_address(a) if t == "address" else a for t, a in zip(types, args, strict=True))
    except Exception:  # malformed data: keep the name, drop the arguments
        args = ()
    return ContractRevert(name, tuple(args), raw="0x" + data.hex())
