"""RFID cards paid from the wallet: a card is linked to a payment mandate of the driver's account.

    cards = Cards(wallet, home)
    card = cards.add("04A2B3C4D5E6F7", operator, cap_per_session=20 * TOKEN, total=100 * TOKEN, days=365)
    card.grant                       # "evcard:<mandate id>:<salt hex>": hand it to the operator (off chain)
    cards.list()                     # each card with its mandate as on chain: committed, left, caps, expiry
    cards.remove("04A2B3C4D5E6F7")   # revokes the mandate at once: the card opens nothing more

One mandate per card: its cap per session and total are the card's limits, revoking it stops the card
alone. The chain holds only ``keccak256(salt || uid)`` (:func:`ev_network.mandates.token_ref`); the salt is
32 random bytes kept in the wallet home (``cards/<address>.json``, mode 0600) and given to the operator in
the card's grant, so that its Core Client can recognise the card's idTag. Nobody else can tell which card
(or whether the same card) a reference names.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from web3 import Web3

from ev_network.errors import ContractRevert
from ev_network.mandates import Mandate, Mandates, format_grant, new_salt, token_ref
from wallet.core import STANDING_ALLOWANCE, Wallet
from wallet.errors import WalletError

DAY_S = 86_400


class CardError(WalletError):
    """A card cannot be added, found or removed; the message says why."""


@dataclass(frozen=True)
class LinkedCard:
    """A card as the wallet keeps it (the uid and salt never leave the wallet but in the grant)."""

    uid: str
    label: str
    mandate_id: int
    operator: str
    salt: str  # hex

    @property
    def grant(self) -> str:
        """What the operator's Core Client needs to recognise the card: the mandate and the salt."""
        return format_grant(self.mandate_id, bytes.fromhex(self.salt))

    @property
    def token_ref(self) -> bytes:
        return token_ref(bytes.fromhex(self.salt), self.uid)


@dataclass(frozen=True)
class CardView:
    """A linked card with its mandate as on chain."""

    card: LinkedCard
    mandate: Mandate
    status: str  # active, revoked, expired or exhausted

    def as_json(self) -> dict:
        m = self.mandate
        return {
            "uid": self.card.uid,
            "label": self.card.label,
            "mandate_id": m.mandate_id,
            "operator": self.card.operator,
            "status": self.status,
            "cap_per_session": m.cap_per_session,
            "total": m.total,
            "committed": m.committed,
            "left": m.left,
            "expiry": m.expiry,
        }


def card_status(mandate: Mandate, now: int) -> str:
    """Whether a card's mandate still opens sessions, and if not why."""
    if mandate.revoked:
        return "revoked"
    if now >= mandate.expiry:
        return "expired"
    if mandate.left < 1:
        return "exhausted"
    return "active"


def normal_uid(uid: str) -> str:
    """A card uid as OCPP idTags carry it: upper-case, at most 20 characters (IdToken)."""
    value = uid.strip().upper()
    if not value or len(value) > 20 or not value.isprintable() or " " in value:
        raise CardError(f"a card uid is 1 to 20 characters without spaces (an OCPP idTag), not {uid!r}")
    return value


class Cards:
    """The cards of one wallet account."""

    def __init__(self, wallet: Wallet, home: Path) -> None:
        self.wallet = wallet
        self.mandates = Mandates(wallet.w3, wallet.deployment, wallet.sender)
        self.path = Path(home) / "cards" / f"{wallet.address}.json"

    # -- local file
    def linked(self) -> list[LinkedCard]:
        if not self.path.exists():
            return []
        try:
            return [LinkedCard(**item) for item in json.loads(self.path.read_text())]
        except (OSError, ValueError, TypeError) as exc:
            raise CardError(f"cannot read the card file {self.path}: {exc}") from None

    def _save(self, cards: list[LinkedCard]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump([asdict(c) for c in cards], out, indent=1)
        tmp.replace(self.path)

    def find(self, uid_or_label: str) -> LinkedCard:
        for card in self.linked():
            if uid_or_label.strip().upper() == card.uid or uid_or_label == card.label:
                return card
        raise CardError(f"no card {uid_or_label!r} in this wallet (ev-wallet card list shows them)")

    # -- chain
    def add(
        self, uid: str, operator: str, cap_per_session: int, total: int, *, days: int = 365, label: str = ""
    ) -> LinkedCard:
        """Link card ``uid`` to a new mandate naming ``operator``; the escrow gets an allowance for it if the
        account has not given one yet (sessions pull their deposits from the account)."""
        uid = normal_uid(uid)
        if not Web3.is_address(operator):
            raise CardError(f"not an operator address: {operator!r}")
        if not 0 < cap_per_session <= total:
            raise CardError("the cap per session must be above zero and at most the total")
        if days < 1:
            raise CardError("a card is valid for at least one day")
        if any(c.uid == uid for c in self.linked()):
            raise CardError(f"card {uid} is already linked (remove it first)")
        self.wallet._require_key("link a card")
        salt = new_salt()
        expiry = self.wallet.tracker.chain_time() + days * DAY_S
        escrow = self.wallet.deployment.escrow
        try:
            if self.wallet.token.allowance(self.wallet.address, escrow) < total:
                self.wallet.token.approve(escrow, STANDING_ALLOWANCE if self.wallet.standing_allowance else total)
            receipt = self.mandates.create(
                [Web3.to_checksum_address(operator)], cap_per_session, total, expiry, token_refs=[token_ref(salt, uid)]
            )
        except ContractRevert as exc:
            raise CardError(f"cannot link card {uid}: {exc}") from None
        card = LinkedCard(uid, label or uid, self.mandates.mandate_id_from(receipt), operator, salt.hex())
        self._save([*self.linked(), card])
        return card

    def list(self) -> list[CardView]:
        now = self.wallet.tracker.chain_time()
        views = []
        for card in self.linked():
            mandate = self.mandates.get(card.mandate_id)
            views.append(CardView(card, mandate, card_status(mandate, now)))
        return views

    def remove(self, uid_or_label: str) -> LinkedCard:
        """Revoke the card's mandate (at once: it opens nothing more) and forget the card."""
        card = self.find(uid_or_label)
        if not self.mandates.get(card.mandate_id).revoked:
            try:
                self.mandates.revoke(card.mandate_id)
            except ContractRevert as exc:
                raise CardError(f"cannot revoke card {card.uid}: {exc}") from None
        self._save([c for c in self.linked() if c.uid != card.uid])
        return card
