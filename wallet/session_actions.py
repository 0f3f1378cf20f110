"""The session side of the wallet: naming sessions (full id or label), stop, cancel, reclaim, status,
live progress, history and invoices. A mixin of :class:`wallet.core.Wallet`, which supplies the
account, the escrow binding and the tracker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from ev_network.contracts import Escrow, Session, SessionState
from ev_network.deployment import Deployment
from ev_network.errors import ContractRevert
from ev_network.session_ids import parse_session_id
from wallet.errors import BadSessionId, SessionNotFound, WalletError
from wallet.models import HistoryEntry, Progress, SessionStatus, session_name
from wallet.reverts import explain_revert
from wallet.tracking import SessionTracker
from wallet.units import format_time

if TYPE_CHECKING:
    from wallet.invoice import Invoice


class SessionActions:
    """What a wallet does with sessions once they exist. Session arguments are ints or text (see
    :meth:`resolve_session`); messages name the account's sessions by label."""

    w3: Web3
    deployment: Deployment
    address: str
    escrow: Escrow
    tracker: SessionTracker
    poll_interval: float
    account: LocalAccount | None

    def _require_key(self, action: str) -> LocalAccount:
        if self.account is None:
            raise WalletError(f"cannot {action}: account {self.address} is not unlocked (read-only wallet)")
        return self.account

    def resolve_session(self, ref: int | str) -> int:
        """A session id from an int, or from text: the full id (``0x`` + 64 hex digits, or decimal) or a
        label of this account's sessions (``7``, ``2/7``); BadSessionId says which forms are accepted."""
        if isinstance(ref, int):
            return ref
        try:
            return parse_session_id(ref, driver=self.address)
        except ValueError as exc:
            raise BadSessionId(str(exc)) from None

    def name(self, session_id: int) -> str:
        """How messages name a session: its label for this account's sessions, else the full id."""
        return session_name(session_id, self.address)

    def request_stop(self, session_id: int | str) -> str:
        """Ask the operator to stop a running session (the charge stops, then the operator settles)."""
        session_id = self.resolve_session(session_id)
        session = self._own_session(session_id, "stop")
        name = self.name(session_id)
        if session.state is SessionState.REQUESTED:
            raise WalletError(
                f"session {name} has not started yet, so there is nothing to stop; if it does not start, "
                f"cancel it from {format_time(session.since + self.deployment.start_timeout)}"
            )
        if session.state is not SessionState.ACTIVE:
            raise WalletError(f"cannot stop session {name}: it is {self._state_text(session)}")
        return self._send(lambda: self.escrow.request_stop(session_id), f"stop session {name}")

    def cancel(self, session_id: int | str) -> str:
        """Take the deposit back from a session the operator did not start within the start timeout."""
        return self._refund(
            session_id, "cancel", SessionState.REQUESTED, "only a session that has not started can be cancelled",
            self.escrow.cancel,
        )  # fmt: skip

    def reclaim(self, session_id: int | str) -> str:
        """Take the deposit back from a started session the operator never settled (after the maximum
        duration plus the grace period)."""
        return self._refund(
            session_id, "reclaim", SessionState.ACTIVE, "only a started, unsettled session can be reclaimed",
            self.escrow.reclaim,
        )  # fmt: skip

    def _refund(
        self, session_id: int | str, action: str, state: SessionState, rule: str, escrow_call: Callable[[int], Any]
    ) -> str:
        """The driver's ``action`` (cancel, reclaim: ``escrow_call``) of a session of its own in ``state``
        (else a WalletError naming ``rule``); the transaction hash."""
        session_id = self.resolve_session(session_id)
        session = self._own_session(session_id, action)
        name = self.name(session_id)
        if session.state is not state:
            raise WalletError(f"cannot {action} session {name}: it is {self._state_text(session)} ({rule})")
        return self._send(lambda: escrow_call(session_id), f"{action} session {name}")

    def session_status(self, session_id: int | str) -> SessionStatus:
        """State and times of a session (any driver's: sessions are public)."""
        return self.tracker.status(self.resolve_session(session_id))

    def watch(
        self, session_id: int | str, poll_interval: float | None = None, timeout: float | None = None
    ) -> Iterator[Progress]:
        """Progress updates until the session is settled, cancelled or expired (see SessionTracker.watch)."""
        return self.tracker.watch(self.resolve_session(session_id), poll_interval or self.poll_interval, timeout)

    def awatch(
        self, session_id: int | str, poll_interval: float | None = None, timeout: float | None = None
    ) -> AsyncIterator[Progress]:
        """:meth:`watch` as an async iterator."""
        return self.tracker.awatch(self.resolve_session(session_id), poll_interval or self.poll_interval, timeout)

    def history(self) -> list[HistoryEntry]:
        """This account's sessions, oldest first, with their final (or current) state."""
        return self.tracker.history()

    def invoice(self, session_id: int | str) -> Invoice:
        """The invoice of a settled session, from chain data only."""
        from wallet.invoice import build_invoice

        return build_invoice(self.w3, self.deployment, self.resolve_session(session_id), own=self.address)

    def _own_session(self, session_id: int, action: str) -> Session:
        name = self.name(session_id)
        self._require_key(f"{action} session {name}")
        session = self.escrow.get_session(session_id)
        if session.state is SessionState.NONE:
            raise SessionNotFound(f"cannot {action} session {name}: there is no such session")
        if session.driver.lower() != self.address.lower():
            raise SessionNotFound(f"cannot {action} session {name}: it belongs to another driver")
        return session

    def _state_text(self, session: Session) -> str:
        """The state as the driver should read it: ``active``, or ``already settled`` (``cancelled``,
        ``expired``), for a Closed session (its lane moved on) too, from its events."""
        if session.state in (SessionState.REQUESTED, SessionState.ACTIVE):
            return session.state.name.lower()
        return f"already {self.tracker.outcome(session.session_id)}"

    def _send(self, call: Any, action: str) -> str:
        try:
            receipt = call()
        except ContractRevert as exc:
            raise explain_revert(exc, action, now=self.tracker.chain_time()) from None
        return Web3.to_hex(receipt["transactionHash"])
