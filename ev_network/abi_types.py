"""Checking call arguments against a contract function's ABI types before web3 sees them: web3 answers
an int that does not fit (a station id of 2**40, a price above uint96) with "MismatchedABI: ABI Not
Found!"; this names the argument and the limit instead."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ev_network.errors import ValueOutOfRange

_INT = re.compile(r"(u?)int(\d*)")


def int_range(abi_type: str) -> tuple[int, int] | None:
    """(lowest, highest) value of an ``intN``/``uintN`` type; None for any other type."""
    found = _INT.fullmatch(abi_type)
    if found is None:
        return None
    bits = int(found.group(2) or 256)
    return (0, 2**bits - 1) if found.group(1) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def check_args(function: dict, args: Sequence[Any]) -> None:
    """Raise ValueOutOfRange if an integer in ``args`` (also inside tuples and arrays) does not fit
    its type in ``function`` (an ABI entry)."""
    for item, value in zip(function["inputs"], args, strict=False):
        _check(function["name"], item, item["type"], value, item["name"])


def _check(function: str, item: dict, abi_type: str, value: Any, where: str) -> None:
    if abi_type.endswith("]") and isinstance(value, list | tuple):
        element = abi_type[: abi_type.rindex("[")]
        for i, entry in enumerate(value):
            _check(function, item, element, entry, f"{where}[{i}]")
    elif abi_type == "tuple" and isinstance(value, list | tuple):
        for component, entry in zip(item["components"], value, strict=False):
            _check(function, component, component["type"], entry, f"{where}.{component['name']}")
    elif isinstance(value, int) and not isinstance(value, bool) and (limits := int_range(abi_type)):
        low, high = limits
        if value > high:
            raise ValueOutOfRange(f"{function}: {where} {value} is more than a {abi_type} holds (at most {high})")
        if value < low:
            raise ValueOutOfRange(f"{function}: {where} {value} is less than a {abi_type} holds (at least {low})")
