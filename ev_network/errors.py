"""Errors of the bindings (one base, :class:`EVNetworkError`) and the one translation of network errors
into :class:`ChainUnavailable` (:func:`chain_errors`). Revert data is decoded in :mod:`ev_network.reverts`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

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
