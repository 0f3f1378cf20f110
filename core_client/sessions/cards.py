"""RFID cards paid under a payment mandate: who a tapped idTag is, and whether it may start. Pure: no I/O,
no clock (``now`` is passed in).

A driver links a card to a mandate (``ev-wallet card add``) and hands the operator the card's *grant*
(the mandate id and the salt of its token references). The Core Client keeps a :class:`CardMandate` per
granted mandate, read from chain (:mod:`core_client.chain.mandates`); an idTag is a linked card when
``keccak256(salt || idTag)`` is among the mandate's linked references (:func:`find_card`). The answer to
Authorize / StartTransaction is decided from that cache at once, never waiting for the chain
(:func:`card_refusal`); the session itself is opened and started on chain by the chain worker
(``openSession`` of the mandates contract, an OPEN_CARD job, :func:`card_start`).

Exposure while the chain cannot be asked (a card known from the cache starts, its open waits in the
queue): at most the deposit of the session, which is at most the mandate's cap per session and what is
left of its total. What is left counts every session opened under the mandate, settled or not: the
cached ``committed`` (deposits of every open mined up to the block the cache read it at), plus the
deposits of this Core Client's opens it does not count yet, queued or mined since (:func:`uncounted`); so
however many taps come while the chain is away, their deposits together stay within the total. If the open then fails on chain (the driver revoked
the card meanwhile, the mandate ran out), the transaction is stopped and the energy already delivered is
the operator's loss, bounded by the same cap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from core_client.sessions.actions import Decision, QueueJob, SaveSession, decide, info
from core_client.sessions.decisions import ACCEPTED, UINT40, with_transaction
from core_client.sessions.jobs import CardOpenArgs, JobKind
from core_client.sessions.machine import Event, SessionRecord, is_network_tag
from ev_network.mandates import Mandate, token_ref
from ev_network.session_ids import hex_session_id


@dataclass(frozen=True, kw_only=True)
class CardMandate(Mandate):
    """A granted mandate as the Core Client last read it from chain: the mandate's record, and what the
    Core Client knows besides (the grant's salt, whether it names our operator, its linked references)."""

    salt: bytes
    operator_named: bool
    token_refs: frozenset[bytes]
    #: The chain's head when the cache began reading the mandate: ``committed`` counts every open mined up
    #: to it (None: not known, e.g. a copy kept by an older version).
    read_block: int | None = None

    @classmethod
    def of(
        cls, m: Mandate, salt: bytes, operator_named: bool, token_refs: frozenset[bytes], read_block: int | None = None
    ) -> CardMandate:
        """The mandate ``m`` as read from chain, with what the Core Client knows of it."""
        record = {f.name: getattr(m, f.name) for f in fields(Mandate)}
        return cls(**record, salt=salt, operator_named=operator_named, token_refs=token_refs, read_block=read_block)


@dataclass(frozen=True)
class Card:
    """A tapped idTag found linked to a granted mandate."""

    mandate: CardMandate
    token_ref: bytes


MEMO_MAX = 200_000  # idTags whose answer a CardIndex keeps


class CardIndex:
    """The granted mandates indexed by token reference: which mandate a tapped idTag is linked to, in one
    dict lookup once the idTag was tapped before. A reference is ``keccak256(salt || uid)`` with the salt of
    each mandate's grant, so an idTag never tapped before costs one hash per distinct salt (every granted
    mandate's, unless several share one) and a lookup each; the answer is kept per idTag (a card or none).

    A new index made from a new read of the mandates (``previous``: the index it replaces) keeps the answers
    that still hold: a card whose mandate still links its reference under the same salt, and "none" as
    long as no reference or salt was added; every other idTag is looked up again when tapped."""

    def __init__(self, mandates: Iterable[CardMandate] = (), previous: CardIndex | None = None) -> None:
        self.mandates: dict[int, CardMandate] = {m.mandate_id: m for m in mandates}
        self.by_ref: dict[bytes, list[int]] = {}
        for m in self.mandates.values():
            for ref in m.token_refs:
                self.by_ref.setdefault(ref, []).append(m.mandate_id)
        self.salts = list(dict.fromkeys(m.salt for m in self.mandates.values()))
        self._tags: dict[str, tuple[int, bytes] | None] = {} if previous is None else previous._carried(self)

    def _links(self, mandate_id: int, salt: bytes, ref: bytes) -> bool:
        m = self.mandates.get(mandate_id)
        return m is not None and m.salt == salt and ref in m.token_refs

    def _carried(self, new: CardIndex) -> dict[str, tuple[int, bytes] | None]:
        """The answers of this index that still hold in ``new``."""
        grown = any(i not in self.mandates or self.mandates[i].salt != m.salt for i, m in new.mandates.items())
        grown = grown or any(i not in self.by_ref.get(ref, ()) for ref, ids in new.by_ref.items() for i in ids)
        kept: dict[str, tuple[int, bytes] | None] = {}
        for tag, found in self._tags.items():
            if found is None:
                if not grown:
                    kept[tag] = None
            elif new._links(found[0], self.mandates[found[0]].salt, found[1]):
                kept[tag] = found
        return kept

    def find(self, id_tag: str | None) -> Card | None:
        """The card ``id_tag`` is (None: not a card of a granted mandate)."""
        if not id_tag or not id_tag.strip():
            return None
        tag = id_tag.strip().upper()
        if tag not in self._tags:
            if len(self._tags) >= MEMO_MAX:  # idTags of no card, tapped without end: start over
                self._tags.clear()
            self._tags[tag] = self._look_up(tag)
        found = self._tags[tag]
        return None if found is None else Card(self.mandates[found[0]], found[1])

    def _look_up(self, tag: str) -> tuple[int, bytes] | None:
        for salt in self.salts:
            ref = token_ref(salt, tag)
            for mandate_id in self.by_ref.get(ref, ()):
                if self.mandates[mandate_id].salt == salt:
                    return mandate_id, ref
        return None


def find_card(mandates: Iterable[CardMandate], id_tag: str | None) -> Card | None:
    """The granted mandate ``id_tag`` is linked to (None: not a card of ours); many taps: :class:`CardIndex`."""
    return CardIndex(mandates).find(id_tag)


def uncounted(mandate_id: int, read_block: int | None, opens: Iterable[tuple[CardOpenArgs, int | None]]) -> int:
    """Deposits of this Core Client's ``opens`` (each with the block it was mined in, None: not yet) under
    mandate ``mandate_id`` that the cached ``committed`` may not count: those not mined, and those mined
    after the mandate was read (``read_block``). ``committed`` counts the deposit of every session opened,
    settled or not, so these are the sessions the cache has not seen yet; one mined between the read's
    start and its ``getMandate`` is counted twice until the next read (on the safe side)."""
    return sum(
        args.deposit
        for args, block in opens
        if args.mandate_id == mandate_id and (block is None or (read_block is not None and block > read_block))
    )


def card_deposit(m: CardMandate, queued: int) -> int:
    """The deposit a session of the card locks: its cap per session, or what is left of the total (less
    ``queued``, the deposits of this Core Client's opens its ``committed`` does not count yet:
    :func:`uncounted`), whichever is smaller."""
    return max(min(m.cap_per_session, m.left - queued), 0)


def card_refusal(card: Card | None, now: float, queued: int = 0) -> str | None:
    """Why a card may not start a session now (None: it may). ``queued``: deposits of its opens that the
    cached ``committed`` does not count yet (:func:`uncounted`)."""
    if card is None:
        return "unknown card"
    m = card.mandate
    if m.revoked:
        return f"mandate {m.mandate_id} revoked"
    if now >= m.expiry:
        return f"mandate {m.mandate_id} expired"
    if not m.operator_named:
        return f"mandate {m.mandate_id} does not name this operator"
    if card_deposit(m, queued) < 1:
        return f"mandate {m.mandate_id} exhausted"
    return None


def card_start(
    card: Card, station_id: int, cp_id: str, connector: int, transaction_id: int, meter_start: int, queued: int
) -> Decision:
    """StartTransaction of a card that may start: Accepted at once, and its session opened and started on
    chain under the mandate by an OPEN_CARD job. The session id exists only once that is mined, so the job is
    queued under the transaction id (far below any session id, which holds the payer's address) and moved to
    the session's id when mined (:meth:`core_client.sessions.service.SessionService.on_card_opened`)."""
    m = card.mandate
    deposit = card_deposit(m, queued)
    args = CardOpenArgs(
        m.mandate_id, card.token_ref.hex(), m.payer, station_id, connector, deposit, transaction_id, meter_start
    )
    note = info(
        f"{cp_id}/{connector}: card of mandate {m.mandate_id} (payer {m.payer}) accepted, transaction "
        f"{transaction_id}, deposit {deposit}; open queued"
    )
    return decide((transaction_id, ACCEPTED), QueueJob(JobKind.OPEN_CARD, transaction_id, args), note)


def card_opened(record: SessionRecord, args: CardOpenArgs, began: float, block: int) -> tuple[SessionRecord, Decision]:
    """A card's open (OPEN_CARD job ``args``) is mined: its new session ``record``, started by the card's
    transaction (which began at ``began``) and already started on chain; and the decision saving it."""
    started = with_transaction(record, args.transaction_id, args.meter_start, began).apply(Event.START_MINED)
    note = info(
        f"session {hex_session_id(record.session_id)}: card of mandate {args.mandate_id} opened and started on "
        f"chain, transaction {args.transaction_id}, deposit {record.deposit} (block {block})"
    )
    return started, decide(None, SaveSession(started), note)


def card_start_refusal(card: Card | None, meter_start: int, now: float, queued: int) -> str | None:
    """Why a card's StartTransaction is refused (None: it starts)."""
    if meter_start >= UINT40:
        return f"meterStart {meter_start} beyond 2^40"
    return card_refusal(card, now, queued)


def ask_roaming(id_tag: str | None, session_found: bool, card: Card | None) -> bool:
    """Whether a tapped ``id_tag`` is asked of the roaming eMSPs before Authorize / StartTransaction is
    decided (a waited-on branch: :meth:`core_client.sessions.service.SessionService.vouch`): one that names
    no session of ours, no linked or vouched-for card, and is no EV Network tag."""
    return bool(id_tag and id_tag.strip()) and not session_found and card is None and not is_network_tag(id_tag)
