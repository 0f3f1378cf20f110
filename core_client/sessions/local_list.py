"""The charge points' local authorization list of RFID cards (OCPP 1.6 Local Auth List Management). Pure:
no I/O, no clock (``now`` is passed in).

The Core Client cannot name a card from its grant (it holds the salt, not the uid): a card enters the list
once it was tapped at one of our charge points and found linked (:func:`core_client.sessions.cards.find_card`).
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

from core_client.sessions.cards import CardMandate, card_refusal, find_card


class ListStatus(str, Enum):
    """idTagInfo.status of a list entry (OCPP 1.6 AuthorizationStatus)."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"


#: A list entry: its status and the expiry date (ISO 8601, UTC) it carries.
Entry = tuple[ListStatus, str]


def entry(mandates: Iterable[CardMandate], id_tag: str, now: float, queued: Callable[[int], int]) -> Entry | None:
    """The card's entry (None: not a card of a granted mandate: out of the list). ``queued(mandate id)``: the
    deposits its committed does not count yet (:meth:`CardSessions.queued`)."""
    card = find_card(mandates, id_tag)
    if card is None:
        return None
    m = card.mandate
    expiry = datetime.fromtimestamp(m.expiry, timezone.utc).isoformat().replace("+00:00", "Z")
    if card_refusal(card, now, queued(m.mandate_id)) is None:
        return ListStatus.ACCEPTED, expiry
    return (ListStatus.EXPIRED if now >= m.expiry and not m.revoked else ListStatus.BLOCKED), expiry


def wanted_list(
    mandates: Iterable[CardMandate], id_tags: Iterable[str], now: float, queued: Callable[[int], int]
) -> dict[str, Entry]:
    """The list the charge points should hold: idTag -> entry, for the cards seen so far."""
    mandates = list(mandates)
    entries = {tag: entry(mandates, tag, now, queued) for tag in id_tags}
    return {tag: e for tag, e in entries.items() if e is not None}


def list_changes(sent: dict[str, Entry], wanted: dict[str, Entry]) -> dict[str, Entry | None]:
    """A differential update from ``sent`` to ``wanted`` (None: remove the idTag)."""
    changes: dict[str, Entry | None] = {tag: e for tag, e in wanted.items() if sent.get(tag) != e}
    changes.update({tag: None for tag in sent if tag not in wanted})
    return changes
