"""The charge points' local authorization list of RFID cards (OCPP 1.6 Local Auth List Management). Pure:
no I/O, no clock (``now`` is passed in).

The Core Client cannot name a card from its grant (it holds the salt, not the uid): a card enters the list
once it was tapped at one of our charge points and found linked (:class:`core_client.sessions.cards.CardIndex`).
Its entry says what the card cache says now: Accepted while its mandate may open a session, Blocked once
revoked, exhausted or no longer naming us, Expired past the mandate's expiry (which is also the entry's
``expiryDate``, so a charge point cut off from us stops taking the card then); a card no granted mandate
links any more leaves the list. :mod:`core_client.sessions.local_list_sync` sends the changes.

Exposure: a charge point that cannot reach the Core Client starts an Accepted card by itself and reports
the transaction when it is back; the Core Client then decides as for any card start (opened under the
mandate with the deposit it allows, or refused and stopped). Each such session costs the payer at most its
deposit, at most the mandate's cap per session; what the charge point delivered beyond it, or in a session
the mandate no longer allows, is the operator's loss, bounded per offline start by what the car takes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from enum import Enum

from core_client.sessions.cards import Card, CardIndex, card_refusal


class ListStatus(str, Enum):
    """idTagInfo.status of a list entry (OCPP 1.6 AuthorizationStatus)."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"


#: A list entry: its status and the expiry date (ISO 8601, UTC) it carries.
Entry = tuple[ListStatus, str]


def entry(card: Card | None, now: float, queued: Callable[[int], int]) -> Entry | None:
    """The entry of a card (None: not a card of a granted mandate: out of the list). ``queued(mandate id)``: the
    deposits its committed does not count yet (:meth:`CardSessions.queued`)."""
    if card is None:
        return None
    m = card.mandate
    expiry = datetime.fromtimestamp(m.expiry, timezone.utc).isoformat().replace("+00:00", "Z")
    if card_refusal(card, now, queued(m.mandate_id)) is None:
        return ListStatus.ACCEPTED, expiry
    return (ListStatus.EXPIRED if now >= m.expiry and not m.revoked else ListStatus.BLOCKED), expiry


def wanted_list(index: CardIndex, id_tags: Iterable[str], now: float, queued: Callable[[int], int]) -> dict[str, Entry]:
    """The list the charge points should hold: idTag -> entry, for the cards seen so far."""
    entries = {tag: entry(index.find(tag), now, queued) for tag in id_tags}
    return {tag: e for tag, e in entries.items() if e is not None}


def list_changes(sent: dict[str, Entry], wanted: dict[str, Entry]) -> dict[str, Entry | None]:
    """A differential update from ``sent`` to ``wanted`` (None: remove the idTag)."""
    changes: dict[str, Entry | None] = {tag: e for tag, e in wanted.items() if sent.get(tag) != e}
    changes.update({tag: None for tag in sent if tag not in wanted})
    return changes


class WantedList:
    """The list the charge points should hold, kept up to date by re-checking only what may have changed: the
    cards seen since the last check, the cards of mandates that changed (a new read of the cache, or
    :meth:`touch` when an open under it was queued or failed), and the Accepted cards whose mandate's
    expiry passed. Each :meth:`update` says which idTags' entries changed."""

    def __init__(self, queued: Callable[[int], int]) -> None:
        self.queued = queued
        self.entries: dict[str, Entry] = {}
        self.checked = 0  # how many of the seen idTags were checked (they only grow)
        self.mandate_of: dict[str, int] = {}  # idTag -> the mandate its card is under
        self.index: CardIndex | None = None  # the one the entries were checked against
        self.dirty: set[int] = set()
        self.next_expiry: float | None = None  # the earliest expiry of an Accepted card's mandate

    def touch(self, mandate_id: int) -> None:
        """Check the cards of the mandate again at the next update."""
        self.dirty.add(mandate_id)

    def update(self, index: CardIndex, id_tags: list[str], now: float) -> set[str]:
        """Bring the entries up to date with ``index`` and the idTags seen; the idTags whose entry changed."""
        check = set(id_tags[self.checked :])
        self.checked = len(id_tags)
        if index is not self.index:
            old, self.index = self.index, index
            if old is None:
                check.update(id_tags)
            else:
                moved = {
                    i
                    for i in old.mandates.keys() | index.mandates.keys()
                    if old.mandates.get(i) != index.mandates.get(i)
                }
                if moved:
                    self.dirty |= moved
                    check.update(tag for tag in id_tags if tag not in self.mandate_of)  # linked anew?
        if self.dirty:
            check.update(tag for tag, i in self.mandate_of.items() if i in self.dirty)
            self.dirty.clear()
        if self.next_expiry is not None and now >= self.next_expiry:
            check.update(
                tag for tag, i in self.mandate_of.items() if i in index.mandates and index.mandates[i].expiry <= now
            )
        changed = {tag for tag in check if self._check(index, tag, now)}
        if check:
            expiries = (
                index.mandates[self.mandate_of[t]].expiry
                for t, e in self.entries.items()
                if e[0] is ListStatus.ACCEPTED
            )
            self.next_expiry = min(expiries, default=None)
        return changed

    def _check(self, index: CardIndex, tag: str, now: float) -> bool:
        card = index.find(tag)
        if card is None:
            self.mandate_of.pop(tag, None)
        else:
            self.mandate_of[tag] = card.mandate.mandate_id
        new = entry(card, now, self.queued)
        if self.entries.get(tag) == new:
            return False
        if new is None:
            del self.entries[tag]
        else:
            self.entries[tag] = new
        return True
