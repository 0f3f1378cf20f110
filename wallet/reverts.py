"""What the escrow's custom errors mean for the driver: a revert turned into a :class:`WalletError`
that says, in one sentence, why ``action`` cannot be done."""

from __future__ import annotations

import time

from ev_network.contracts import SessionState
from ev_network.errors import ContractRevert
from ev_network.session_ids import LANES
from wallet.errors import InsufficientBalance, SessionNotFound, StationUnavailable, TooEarly, WalletError
from wallet.units import format_time, format_wait


def explain_revert(exc: ContractRevert, action: str, now: int | None = None) -> WalletError:
    """Turn the escrow's custom error into a clear message about ``action`` (e.g. ``cancel session 3``,
    which names the session); ``now`` is the chain's time (default: the wall clock)."""
    args = exc.args_
    if exc.name == "TooEarly" and len(args) == 2:
        allowed_at = int(args[1])
        wait = max(0, allowed_at - (int(time.time()) if now is None else now))
        return TooEarly(
            f"cannot {action} yet: possible from {format_time(allowed_at)} (in {format_wait(wait)})", allowed_at
        )
    if exc.name == "InvalidState" and len(args) == 2:
        state = SessionState(int(args[1]))
        if state is SessionState.NONE:
            return SessionNotFound(f"cannot {action}: there is no such session")
        if state is SessionState.CLOSED:
            return WalletError(f"cannot {action}: the session has already ended (its lane holds a later session)")
        return WalletError(f"cannot {action}: the session is {state.name.lower()}")
    if exc.name == "NotDriver":
        return SessionNotFound(f"cannot {action}: the session belongs to another driver")
    if exc.name == "NoFreeLane":
        return WalletError(
            f"cannot {action}: {args[0]} already has {LANES} sessions open (one per lane), the most a driver "
            "can have at once; stop or cancel one first"
        )
    if exc.name == "UnknownStation":
        return StationUnavailable(f"cannot {action}: there is no station {args[0]}")
    if exc.name == "StationInactive":
        return StationUnavailable(f"cannot {action}: station {args[0]} is not active")
    if exc.name == "InvalidConnector":
        return StationUnavailable(f"cannot {action}: station {args[0]} has no connector {args[1]}")
    if exc.name == "ZeroDeposit":
        return WalletError(f"cannot {action}: the deposit must be more than zero")
    if exc.name == "ERC20InsufficientBalance":
        return InsufficientBalance(f"cannot {action}: balance {args[1]} is below {args[2]} (smallest units)")
    if exc.name == "AccessControlUnauthorizedAccount":
        return WalletError(f"cannot {action}: account {args[0]} lacks the required role")
    return WalletError(f"cannot {action}: the contract refused ({exc})")
