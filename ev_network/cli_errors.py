"""One error policy for the command lines (``core-client``, ``ev-wallet``): a known error becomes one
clear line on stderr and exit code 1, never a traceback (``EVN_DEBUG=1`` shows it)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from ev_network.errors import EVNetworkError

F = TypeVar("F", bound=Callable[..., Any])
KNOWN_ERRORS: tuple[type[Exception], ...] = (EVNetworkError, FileNotFoundError, ValidationError, ValueError, OSError)


def clean_errors(known: tuple[type[Exception], ...] = KNOWN_ERRORS) -> Callable[[F], F]:
    """Decorate a typer command: errors of the ``known`` types print as ``error: <message>``, any
    other as ``error: unexpected <type>: <message>``; both exit 1. Ctrl-C exits 130."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except typer.Exit:
                raise
            except KeyboardInterrupt:
                typer.echo("interrupted", err=True)
                raise typer.Exit(130) from None
            except Exception as exc:
                if os.environ.get("EVN_DEBUG"):
                    raise
                text = " ".join(str(exc).split()) or type(exc).__name__
                shown = (
                    f"error: {text}" if isinstance(exc, known) else f"error: unexpected {type(exc).__name__}: {text}"
                )
                typer.echo(shown, err=True)
                raise typer.Exit(1) from None

        return wrapper  # type: ignore[return-value]

    return decorate
