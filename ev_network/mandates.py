"""Payment mandates (the PaymentMandates contract): a payer lets named operators open sessions against its
tokens within a cap per session, a total and an expiry; cards and eMSP tokens are linked by a reference
that names no card (:func:`token_ref`).

    ref = token_ref(salt, "04A2B3C4D5E6F7")                     # the payer keeps salt; operators learn it off chain
    mandates.create([operator], cap_per_session, total, expiry, token_refs=[ref])   # as the payer
    mandates.open_session(mandate_id, ref, station, connector, deposit, tx_id, meter_start)  # as an operator
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.logs import DISCARD

from ev_network.contracts import _Wrapper
from ev_network.deployment import Deployment
from ev_network.errors import EVNetworkError
from ev_network.tx import TxSender, call_view

SALT_BYTES = 32
MANDATES_ROLE = Web3.keccak(text="MANDATES_ROLE")  # the escrow's role for the mandates contract (openActiveSession)


def new_salt() -> bytes:
    """A payer's secret salt for its token references (32 random bytes; never put on chain)."""
    return secrets.token_bytes(SALT_BYTES)


def token_ref(salt: bytes, uid: str) -> bytes:
    """The on-chain reference of a card or eMSP token: keccak256(salt || uid), uid upper-cased as OCPP sends
    idTags of RFID cards in hex. Without the salt the reference cannot be traced back to the uid."""
    if len(salt) != SALT_BYTES:
        raise EVNetworkError(f"a token salt is {SALT_BYTES} bytes, not {len(salt)}")
    if not uid:
        raise EVNetworkError("empty token uid")
    return Web3.keccak(salt + uid.strip().upper().encode())


GRANT_PREFIX = "evcard"


def format_grant(mandate_id: int, salt: bytes) -> str:
    """A card's grant: what the payer hands an operator (off chain) so that its Core Client recognises the
    payer's cards under mandate ``mandate_id``: ``evcard:<mandate id>:<salt hex>``."""
    return f"{GRANT_PREFIX}:{mandate_id}:{salt.hex()}"


def parse_grant(text: str) -> tuple[int, bytes]:
    """(mandate id, salt) of a grant made by :func:`format_grant`."""
    parts = text.strip().split(":")
    try:
        if len(parts) != 3 or parts[0] != GRANT_PREFIX:
            raise ValueError
        mandate_id, salt = int(parts[1]), bytes.fromhex(parts[2])
        if mandate_id < 1 or len(salt) != SALT_BYTES:
            raise ValueError
    except ValueError:
        raise EVNetworkError(f"not a card grant (expected {GRANT_PREFIX}:<mandate id>:<64 hex digits>)") from None
    return mandate_id, salt


@dataclass(frozen=True)
class Mandate:
    """A mandate as stored (``committed``: deposits locked by its sessions so far)."""

    mandate_id: int
    payer: str
    cap_per_session: int
    total: int
    committed: int
    expiry: int
    revoked: bool
    any_token: bool

    @property
    def left(self) -> int:
        """What is left of the total for new sessions."""
        return max(self.total - self.committed, 0)


class Mandates(_Wrapper):
    """The PaymentMandates contract."""

    def __init__(self, w3: Web3, deployment: Deployment, sender: TxSender | None = None) -> None:
        if not deployment.payment_mandates:
            raise EVNetworkError("the deployment file names no payment_mandates contract: deploy again")
        super().__init__(w3, deployment.payment_mandates, "PaymentMandates", sender)
        self.deployment = deployment

    def get(self, mandate_id: int) -> Mandate:
        return Mandate(mandate_id, *call_view(self._fn("getMandate", mandate_id)))

    def is_operator(self, mandate_id: int, operator: str) -> bool:
        return call_view(self._fn("isOperator", mandate_id, operator))

    def is_linked(self, mandate_id: int, ref: bytes) -> bool:
        return call_view(self._fn("isLinked", mandate_id, ref))

    # -- payer
    def create(
        self,
        operators: list[str],
        cap_per_session: int,
        total: int,
        expiry: int,
        *,
        any_token: bool = False,
        token_refs: list[bytes] = (),
        permit: tuple[int, int, bytes, bytes] | None = None,
        allowance: int | None = None,
        wait: bool = True,
    ) -> Any:
        """Create a mandate of the sender; ``permit`` (deadline, v, r, s) for the escrow funds it in the same
        transaction (for ``allowance``, default ``total``)."""
        args = (operators, cap_per_session, total, expiry, any_token, list(token_refs))
        if permit is None:
            return self._send(self._fn("createMandate", *args), wait)
        deadline, v, r, s = permit
        value = total if allowance is None else allowance
        return self._send(self._fn("createMandateWithPermit", *args, value, deadline, v, r, s), wait)

    def set_limits(self, mandate_id: int, cap_per_session: int, total: int, expiry: int, *, wait: bool = True) -> Any:
        return self._send(self._fn("setLimits", mandate_id, cap_per_session, total, expiry), wait)

    def set_operator(self, mandate_id: int, operator: str, allowed: bool, *, wait: bool = True) -> Any:
        return self._send(self._fn("setOperator", mandate_id, operator, allowed), wait)

    def set_token(self, mandate_id: int, ref: bytes, linked: bool, *, wait: bool = True) -> Any:
        return self._send(self._fn("setToken", mandate_id, ref, linked), wait)

    def revoke(self, mandate_id: int, *, wait: bool = True) -> Any:
        return self._send(self._fn("revoke", mandate_id), wait)

    # -- operator
    def open_session(
        self,
        mandate_id: int,
        ref: bytes,
        station_id: int,
        connector: int,
        deposit: int,
        transaction_id: int,
        meter_start: int,
        *,
        wait: bool = True,
    ) -> Any:
        """Open and start a session under the mandate (the escrow pulls ``deposit`` from the payer)."""
        fn = self._fn("openSession", mandate_id, ref, station_id, connector, deposit, transaction_id, meter_start)
        return self._send(fn, wait)

    def mandate_id_from(self, receipt: dict) -> int:
        """The id of a ``create`` receipt's mandate."""
        return self._event_arg(receipt, "MandateCreated", "mandateId")

    def session_id_from(self, receipt: dict) -> int:
        """The escrow session id of an ``open_session`` receipt."""
        return self._event_arg(receipt, "MandateSessionOpened", "sessionId")

    def _event_arg(self, receipt: dict, event: str, arg: str) -> int:
        events = getattr(self.contract.events, event)().process_receipt(receipt, errors=DISCARD)
        if not events:
            raise EVNetworkError(f"receipt holds no {event} event")
        return events[0]["args"][arg]
