"""Errors of the bindings (one base, :class:`EVNetworkError`), the one translation of network errors
into :class:`ChainUnavailable` (:func:`chain_errors`), and decoding of the contracts' custom errors
from revert data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from eth_abi import decode
from eth_utils import function_abi_to_4byte_selector, function_signature_to_4byte_selector, to_checksum_address
from pydantic import BaseModel, ValidationError
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout as RequestsTimeout

#: What a JSON-RPC call over HTTP raises when the node cannot be reached or does not answer in time.
NETWORK_ERRORS = (RequestsConnectionError, RequestsTimeout, ConnectionError, TimeoutError)


class EVNetworkError(Exception):
    """Base class of every error the bindings raise."""


class ChainUnavailable(EVNetworkError):
    """The JSON-RPC endpoint cannot be reached (chain down, wrong URL, a server that never answers)."""


class NodeError(EVNetworkError):
    """The node answered a read with an error of its own (say, a log query over more blocks than it serves)."""


class DeploymentError(EVNetworkError):
    """The deployment file is missing or invalid, or names contracts the chain does not have."""


class ValueOutOfRange(EVNetworkError, ValueError):
    """An argument does not fit the contract function's ABI type (checked before anything is sent)."""


class ContractRevert(EVNetworkError):
    """A call or transaction reverted; ``name`` is the contract's custom error (e.g. ``InvalidState``)."""

    def __init__(self, name: str, args: tuple = (), raw: str = "") -> None:
        self.name = name
        self.args_ = args
        self.raw = raw
        shown = ", ".join(str(a) for a in args)
        super().__init__(f"{name}({shown})" if name else f"reverted ({raw or 'no reason'})")


class TransactionFailed(EVNetworkError):
    """A mined transaction has status 0, or it was never mined in time."""


def network_reason(exc: BaseException) -> str:
    """A short reason for a network error: ``Connection refused``, ``Name or service not known``, ``no
    answer within 5 s``, instead of urllib3's nested text."""
    if isinstance(exc, RequestsTimeout | TimeoutError) and not isinstance(exc, RequestsConnectionError):
        limit = re.search(r"read timeout=([\d.]+)", str(exc))
        return f"no answer within {float(limit.group(1)):g} s" if limit else "no answer in time"
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    return found.group(1).strip() if found else type(exc).__name__


def endpoint_of(w3: Any) -> str:
    """The URL a Web3 talks to (for messages), or ``the node`` if its provider has none."""
    return str(getattr(getattr(w3, "provider", None), "endpoint_uri", None) or "the node")


@contextmanager
def chain_errors(w3: Any = None) -> Iterator[None]:
    """Network errors inside the block (or the decorated function) become :class:`ChainUnavailable`,
    naming ``w3``'s endpoint: ``with chain_errors(w3): w3.eth.get_block("latest")``."""
    try:
        yield
    except NETWORK_ERRORS as exc:
        where = f" at {endpoint_of(w3)}" if w3 is not None else ""
        raise ChainUnavailable(f"cannot reach the chain{where}: {network_reason(exc)}") from exc


Model = TypeVar("Model", bound=BaseModel)


def read_json_model(model: type[Model], path: Path, error: type[EVNetworkError], what: str) -> Model:
    """``model`` read from the JSON file ``path``; a file that cannot be read or is not valid raises
    ``error`` in one line naming ``what`` (say, "deployment file"), the path and the first problem."""
    try:
        return model.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        problem = "missing" if first["type"] == "missing" else first["msg"].removeprefix("Value error, ").lower()
        raise error(f"{what} {path} is not valid: {where}: {problem}") from None


@cache
def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    from ev_network.deployment import load_abi  # local: deployment imports this module

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
