"""Card decisions (core_client.sessions.cards), pure: which granted mandate a tapped idTag is linked to,
whether it may start, the deposit it locks (never above the cap per session nor what is left of the total,
counting opens still queued), and the proxy rule that a linked card is the chain's tag."""

from __future__ import annotations

from dataclasses import fields

from ocpp.messages import Call

from core_client.proxy.policy import Source, reply, source
from core_client.sessions.actions import QueueJob
from core_client.sessions.cards import (
    CardIndex,
    CardMandate,
    card_deposit,
    card_refusal,
    card_start,
    find_card,
    uncounted,
)
from core_client.sessions.jobs import CardOpenArgs, JobKind
from core_client.sessions.local_list import ListStatus, WantedList, entry, list_changes, wanted_list
from ev_network.mandates import Mandate, new_salt, token_ref

SALT = new_salt()
CARD = "04A2B3C4D5E6F7"


def mandate(**changes) -> CardMandate:
    values = dict(
        mandate_id=3, salt=SALT, payer="0x" + "11" * 20, cap_per_session=20, total=50, committed=0, expiry=1_000,
        revoked=False, any_token=False, operator_named=True, token_refs=frozenset({token_ref(SALT, CARD)}),
    )  # fmt: skip
    return CardMandate(**{**values, **changes})


def test_a_card_is_found_by_its_salted_reference_only():
    other = mandate(mandate_id=4, salt=new_salt(), token_refs=frozenset())
    card = find_card([other, mandate()], CARD.lower())
    assert card is not None and card.mandate.mandate_id == 3 and card.token_ref == token_ref(SALT, CARD)
    assert find_card([mandate()], "04A2B3C4D5E6F8") is None
    assert find_card([mandate()], "") is None and find_card([mandate()], None) is None


def test_refusals_name_why_and_the_deposit_never_exceeds_cap_or_total():
    card = find_card([mandate()], CARD)
    assert card_refusal(card, now=999) is None
    assert card_refusal(None, now=0) == "unknown card"
    assert "revoked" in card_refusal(find_card([mandate(revoked=True)], CARD), now=0)
    assert "expired" in card_refusal(card, now=1_000)
    assert "does not name" in card_refusal(find_card([mandate(operator_named=False)], CARD), now=0)
    assert "exhausted" in card_refusal(find_card([mandate(committed=50)], CARD), now=0)
    assert "exhausted" in card_refusal(card, now=0, queued=50)  # opens still queued count
    assert card_deposit(mandate(), queued=0) == 20
    assert card_deposit(mandate(committed=40), queued=0) == 10
    assert card_deposit(mandate(committed=20), queued=25) == 5


def test_what_the_cache_does_not_count_yet_opens_queued_and_mined_after_its_read():
    def opened(mandate_id: int, deposit: int) -> CardOpenArgs:
        return CardOpenArgs(mandate_id, "00", "0x" + "11" * 20, 7, 1, deposit, 42, 0)

    opens = [(opened(3, 20), 90), (opened(3, 7), 101), (opened(3, 5), None), (opened(4, 9), 120), (opened(4, 1), None)]
    assert uncounted(3, read_block=100, opens=opens) == 7 + 5  # mined at 90: in the committed read at 100
    assert uncounted(3, read_block=101, opens=opens) == 5
    assert uncounted(4, read_block=100, opens=opens) == 9 + 1
    assert uncounted(3, read_block=None, opens=opens) == 5  # read block unknown: only what is not mined
    # a session mined since the read, still charging: the card's next start locks only what is left
    assert card_deposit(mandate(total=30, read_block=100), uncounted(3, 100, [(opened(3, 20), 101)])) == 10


def test_a_card_start_is_accepted_at_once_and_queues_its_open():
    card = find_card([mandate()], CARD)
    decision = card_start(card, station_id=7, cp_id="CP", connector=1, transaction_id=42, meter_start=5, queued=0)
    assert decision.reply == (42, "Accepted")
    [job] = [a for a in decision.actions if isinstance(a, QueueJob)]
    assert (job.kind, job.session_id) == (JobKind.OPEN_CARD, 42)
    assert job.args == CardOpenArgs(3, card.token_ref.hex(), "0x" + "11" * 20, 7, 1, 20, 42, 5)


def test_proxy_a_linked_card_is_the_chains_every_other_card_the_csms():
    linked = {CARD}.__contains__
    assert source("Authorize", {"idTag": CARD}, linked) is Source.CORE
    assert source("StartTransaction", {"idTag": CARD}, linked) is Source.MERGED
    assert source("Authorize", {"idTag": "CSMS-CARD"}, linked) is Source.CSMS
    assert source("Authorize", {"idTag": CARD}) is Source.CSMS  # without the card cache: the CSMS's
    # the CSMS cannot be asked: a linked card gets the Core Client's answer, not the offline default
    call = Call("1", "Authorize", {"idTag": CARD})
    local = {"idTagInfo": {"status": "Invalid"}}
    assert reply(call, None, local, chain_tag=linked).payload == local


def test_local_list_entries_follow_the_cache_and_updates_carry_only_changes():
    def none(_: int) -> int:
        return 0

    expiry = "1970-01-01T00:16:40Z"

    def at(m: CardMandate, tag: str = CARD):
        return find_card([m], tag)

    assert entry(at(mandate(), CARD.lower()), now=0, queued=none) == (ListStatus.ACCEPTED, expiry)
    assert entry(at(mandate(revoked=True)), now=0, queued=none) == (ListStatus.BLOCKED, expiry)
    assert entry(at(mandate(committed=50)), now=0, queued=none) == (ListStatus.BLOCKED, expiry)  # exhausted
    assert entry(at(mandate()), now=0, queued=lambda m: 50) == (ListStatus.BLOCKED, expiry)  # opens not counted yet
    assert entry(at(mandate()), now=1_000, queued=none) == (ListStatus.EXPIRED, expiry)
    assert entry(at(mandate(token_refs=frozenset())), now=0, queued=none) is None  # unlinked: leaves the list
    wanted = wanted_list(CardIndex([mandate(revoked=True)]), [CARD, "DEADBEEF"], now=0, queued=none)
    assert wanted == {CARD: (ListStatus.BLOCKED, expiry)}
    sent = {CARD: (ListStatus.ACCEPTED, expiry), "GONE": (ListStatus.ACCEPTED, expiry)}
    assert list_changes(sent, wanted) == {CARD: (ListStatus.BLOCKED, expiry), "GONE": None}
    assert list_changes(wanted, wanted) == {}


def test_the_index_hashes_a_new_idtag_once_per_salt_and_keeps_answers_that_still_hold(monkeypatch):
    import core_client.sessions.cards as cards

    hashed: list[bytes] = []
    monkeypatch.setattr(cards, "token_ref", lambda salt, uid: hashed.append(salt) or token_ref(salt, uid))
    others = [mandate(mandate_id=10 + i, salt=new_salt(), token_refs=frozenset()) for i in range(5)]
    index = CardIndex([*others, mandate()])
    assert index.find(CARD).mandate.mandate_id == 3 and len(hashed) == 6  # one hash per salt, the first tap
    assert index.find(CARD.lower()).mandate.mandate_id == 3 and index.find("CSMS-CARD") is None
    assert len(hashed) == 12  # a tap before: no hash at all
    index.find("CSMS-CARD")
    assert len(hashed) == 12
    fresh = CardIndex([*others, mandate(committed=20)], previous=index)  # the cache read again: only amounts
    assert fresh.find(CARD).mandate.committed == 20 and fresh.find("CSMS-CARD") is None and len(hashed) == 12
    other = new_salt()
    grown = CardIndex(
        [*others, mandate(), mandate(mandate_id=4, salt=other, token_refs=frozenset({token_ref(other, "CSMS-CARD")}))],
        previous=fresh,
    )
    assert grown.find("CSMS-CARD").mandate.mandate_id == 4  # a reference was added: "none" is asked again
    unlinked = CardIndex([*others, mandate(token_refs=frozenset())], previous=grown)
    assert unlinked.find(CARD) is None  # its reference is gone


def test_the_wanted_list_rechecks_only_new_cards_changed_mandates_and_expiries():
    uses: list[int] = []

    def queued(mandate_id: int) -> int:
        uses.append(mandate_id)
        return 0

    salt = new_salt()
    two = mandate(mandate_id=5, salt=salt, expiry=500, token_refs=frozenset({token_ref(salt, "CAFE")}))
    wanted = WantedList(queued)
    index = CardIndex([mandate(), two])
    assert wanted.update(index, [CARD, "CAFE"], now=0) == {CARD, "CAFE"} and sorted(uses) == [3, 5]
    uses.clear()
    assert wanted.update(index, [CARD, "CAFE"], now=1) == set() and uses == []  # nothing changed: nothing checked
    index = CardIndex([mandate(revoked=True), two], previous=index)
    assert wanted.update(index, [CARD, "CAFE"], now=2) == {CARD} and uses == [3]  # only mandate 3's card (revoked)
    assert wanted.entries[CARD][0] is ListStatus.BLOCKED
    uses.clear()
    wanted.touch(5)
    assert wanted.update(index, [CARD, "CAFE"], now=3) == set() and uses == [5]  # an open under 5: re-checked
    uses.clear()
    assert wanted.update(index, [CARD, "CAFE"], now=500) == {"CAFE"}  # its mandate's expiry passed
    assert wanted.entries["CAFE"][0] is ListStatus.EXPIRED


def test_a_card_mandate_is_the_chains_mandate_record_and_what_the_core_client_knows_of_it():
    record = Mandate(3, "0x" + "11" * 20, 20, 50, 40, 1_000, False, False)
    m = CardMandate.of(record, SALT, True, frozenset({token_ref(SALT, CARD)}), read_block=7)
    assert isinstance(m, Mandate) and m.left == record.left == 10
    assert {f.name: getattr(m, f.name) for f in fields(Mandate)} == {
        f.name: getattr(record, f.name) for f in fields(Mandate)
    }
    assert (m.salt, m.operator_named, m.read_block) == (SALT, True, 7)
    assert card_deposit(m, queued=0) == 10 and card_deposit(m, queued=10) == 0
