"""One error policy for the command lines (``core-client``, ``ev-wallet``), like pyocmf's CLI: a command
catches only its package's error base, which prints as one line ``error: <message>`` on stderr and exits
1; any other exception is a bug and keeps its traceback. Ctrl-C exits 130. ``EVN_DEBUG=1`` shows the
traceback of a known error too.

No CLI framework here (the runtime package must not need typer): the exit is a plain SystemExit,
which typer and click pass through."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from ev_network.errors import EVNetworkError

F = TypeVar("F", bound=Callable[..., Any])
#: What ``core-client`` catches today (the wallet catches only EVNetworkError). Deprecated: each CLI
#: should catch only its package's error base; see the wallet's ``clean_errors``.
KNOWN_ERRORS: tuple[type[Exception], ...] = (EVNetworkError, FileNotFoundError, ValueError, OSError)


def one_line(exc: BaseException) -> str:
    """An error's message on one line (newlines and runs of spaces folded)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def clean_errors(known: tuple[type[Exception], ...] = (EVNetworkError,)) -> Callable[[F], F]:
    """Decorate a command: errors of the ``known`` types print as ``error: <message>`` and exit 1; any
    other error propagates (a bug: its traceback is the report). Ctrl-C exits 130."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt:
                print("interrupted", file=sys.stderr)
                raise SystemExit(130) from None
            except known as exc:
                if os.environ.get("EVN_DEBUG"):
                    raise
                print(f"error: {one_line(exc)}", file=sys.stderr)
                raise SystemExit(1) from None

        return wrapper  # type: ignore[return-value]

    return decorate
