"""RFID cards end to end: a driver links a card to a mandate (the wallet library), hands the operator the
grant, and taps the card at an ocpp-rpc charge point (npm, strict OCPP 1.6 schemas; shares no code with
ours). The Core Client answers from its card cache at once and opens + starts the session on chain under
the mandate; the session settles with the refund to the payer. Unknown, revoked and exhausted cards are
refused; with the chain briefly unreachable a known card still starts and its session reaches the chain
when it is back. In proxy mode a linked card is the chain's, a CSMS card stays the CSMS's."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timezone
from pathlib import Path

from core_client.daemon import Daemon
from core_client.proxy.config import UpstreamSettings
from core_client.sessions.jobs import JobKind
from ev_network.contracts import SessionState
from ev_network.mandates import Mandates
from ev_network.pricing import price
from tools.devchain import ChainProxy
from tools.harness.chain import TARIFF, TOKEN
from tools.harness.core import PASSWORD, Core, chain_events, cp_ids, funded_driver, running_core, until, wait_chain
from tools.harness.interop import charge_point, next_event, tapping, unplug
from tools.harness.upstream_relay import Csms
from tools.harness.wallet import driver_wallet
from wallet.cards import Cards

CARD = "04A2B3C4D5E6F7"
CAP, TOTAL = 20 * TOKEN, 50 * TOKEN
# The ocpp-rpc charge point charges a card's 2.1 kWh in well under a second (about 100 MW, the test
# harness's plausibility bound): these tests are about cards, not meter plausibility, so the bound is lifted.
CARDS = {"cards_poll_s": 0.2, "max_power_kw": 1_000_000}


async def link_card(net, tmp_path: Path, driver_index: int, uid: str = CARD, cap: int = CAP, total: int = TOTAL):
    """A funded driver links ``uid``; the grant goes to the operator's grants file. (cards, card, grants file)"""
    driver = await funded_driver(net, driver_index)
    cards = Cards(driver_wallet(net, driver), tmp_path / "wallet")
    card = await asyncio.to_thread(cards.add, uid, net.operator.address, cap, total)
    grants = tmp_path / "grants.txt"
    grants.write_text(f"# cards granted to this operator\n{card.grant}\n")
    return cards, card, grants


async def known(core, mandate_id: int, **state) -> None:
    """Wait until the Core Client's card cache holds the mandate as given (e.g. revoked=True)."""

    def seen() -> bool:
        m = core.daemon.cards.cached.get(mandate_id)
        return m is not None and all(getattr(m, k) == v for k, v in state.items())

    await until(seen, 10, f"mandate {mandate_id} in the card cache with {state}")


async def test_a_linked_card_opens_starts_and_settles_on_chain_under_its_mandate(clean_chain, tmp_path, keyfile):
    net = clean_chain
    cards, card, grants = await link_card(net, tmp_path, 7)
    payer = cards.wallet
    [cp] = cp_ids("CARD")
    async with running_core(net, tmp_path, keyfile, {cp: 1}, cards_file=grants, **CARDS) as core:
        await known(core, card.mandate_id)
        before = payer.balance()
        async with tapping(core, cp, CARD.lower()) as node:  # readers give the uid in any case
            assert (await next_event(node.stdout, "authorized"))["status"] == "Accepted"
            started = await next_event(node.stdout, "started")
            assert started["status"] == "Accepted"
            tx = started["transactionId"]
            s = await until(lambda: core.daemon.store.session_by_transaction(tx), 20, "the card's session")
            await wait_chain(net, s.session_id, SessionState.ACTIVE)
            assert s.driver == payer.address and s.deposit == CAP  # the cap per session is locked, no more
            stopped = await unplug(node)
        await wait_chain(net, s.session_id, SessionState.SETTLED)
        [settled] = chain_events(net, "SessionSettled", s.session_id)
        [on_chain_start] = chain_events(net, "SessionStarted", s.session_id)
        energy = stopped["meterStop"] - stopped["meterStart"]
        assert on_chain_start.args["transactionId"] == tx
        assert settled.args["cost"] == price(TARIFF, energy) and energy == 2100
        assert payer.balance() == before - settled.args["cost"]  # the rest of the deposit went back to the payer
        invoice = payer.invoice(s.session_id)
        assert invoice.energy_wh == energy and invoice.total == settled.args["cost"]
        listed = cards.list()[0]
        assert listed.mandate.committed == CAP and listed.status == "active"


async def test_unknown_revoked_and_exhausted_cards_are_refused(clean_chain, tmp_path, keyfile):
    net = clean_chain
    cards, card, grants = await link_card(net, tmp_path, 8, cap=5 * TOKEN, total=5 * TOKEN)
    [cp] = cp_ids("REFUSE")
    async with running_core(net, tmp_path, keyfile, {cp: 1}, cards_file=grants, **CARDS) as core:
        await known(core, card.mandate_id)
        async with tapping(core, cp, "DEADBEEF01") as node:  # a card nobody linked
            assert (await next_event(node.stdout, "authorized"))["status"] == "Invalid"

        # exhausted: its first session locks the whole total (5), which stays committed after the refund
        async with tapping(core, cp, CARD) as node:
            started = await next_event(node.stdout, "started")
            assert started["status"] == "Accepted"
            tx = started["transactionId"]
            s = await until(lambda: core.daemon.store.session_by_transaction(tx), 20, "the card's session")
            await unplug(node)
        await wait_chain(net, s.session_id, SessionState.SETTLED)
        assert s.deposit == 5 * TOKEN
        await known(core, card.mandate_id, committed=5 * TOKEN)
        async with tapping(core, cp, CARD) as node:
            assert (await next_event(node.stdout, "authorized"))["status"] == "Invalid"

        await asyncio.to_thread(cards.remove, CARD)
        await known(core, card.mandate_id, revoked=True)
        async with tapping(core, cp, CARD) as node:
            assert (await next_event(node.stdout, "authorized"))["status"] == "Invalid"
        await core.wait_idle()
        assert core.daemon.store.jobs("failed") == []
        assert len(core.daemon.store.jobs("done", kind=JobKind.OPEN_CARD)) == 1  # only the first session's open


async def test_a_known_card_starts_while_the_chain_is_unreachable_and_settles_when_it_is_back(
    clean_chain, tmp_path, keyfile
):
    net = clean_chain
    proxy = ChainProxy(int(net.rpc_url.rsplit(":", 1)[1]))
    await proxy.resume()
    _, card, grants = await link_card(net, tmp_path, 9)
    [cp] = cp_ids("CARDOUT")
    settings = {"cards_file": grants, "rpc_url": proxy.url, **CARDS}
    async with running_core(net, tmp_path, keyfile, {cp: 1}, **settings) as core:
        await known(core, card.mandate_id)
        await proxy.pause()
        async with tapping(core, cp, CARD) as node:
            authorized = await next_event(node.stdout, "authorized")
            started = await next_event(node.stdout, "started")
            assert (authorized["status"], started["status"]) == ("Accepted", "Accepted")
            assert authorized["ms"] < 1000 and started["ms"] < 1000  # decided from the cache
            stopped = await unplug(node)  # the whole charge happens before the chain is back
        assert core.daemon.health()["pending_jobs_by_kind"] == {"start": 1}
        await proxy.resume()
        tx = started["transactionId"]
        s = await until(lambda: core.daemon.store.session_by_transaction(tx), 30, "the card's session")
        await wait_chain(net, s.session_id, SessionState.SETTLED, timeout=30)
        [settled] = chain_events(net, "SessionSettled", s.session_id)
        assert settled.args["meterStop"] == stopped["meterStop"] and settled.args["cost"] == price(TARIFF, 2100)


async def test_proxy_mode_a_linked_card_is_the_chains_a_csms_card_stays_the_csms(clean_chain, tmp_path, keyfile):
    net = clean_chain
    _, card, grants = await link_card(net, tmp_path, 6)
    csms = await Csms(tmp_path / "csms.jsonl").start()
    [cp] = cp_ids("CARDPROXY")
    upstream = UpstreamSettings(url=csms.url, pass_through=True, outbox=tmp_path / "outbox.sqlite")
    try:
        async with running_core(net, tmp_path, keyfile, {cp: 1}, cards_file=grants, upstream=upstream, **CARDS) as core:
            await known(core, card.mandate_id)
            async with tapping(core, cp, CARD) as node:  # the CSMS does not know the card: the chain decides
                assert (await next_event(node.stdout, "authorized"))["status"] == "Accepted"
                started = await next_event(node.stdout, "started")
                assert started["status"] == "Accepted" and started["transactionId"] >= 1001  # the CSMS's id
                tx = started["transactionId"]
                s = await until(lambda: core.daemon.store.session_by_transaction(tx), 20, "the card's session")
                await wait_chain(net, s.session_id, SessionState.ACTIVE)
                await unplug(node)
            await wait_chain(net, s.session_id, SessionState.SETTLED)
            [on_chain_start] = chain_events(net, "SessionStarted", s.session_id)
            assert on_chain_start.args["transactionId"] == tx

            async with tapping(core, cp, "CARD-42", wait=False) as node:  # the CSMS's own card: its answers
                assert (await next_event(node.stdout, "authorized"))["status"] == "Accepted"
                started = await next_event(node.stdout, "started")
                assert started["status"] == "Accepted"
                await next_event(node.stdout, "stopped")
            assert core.daemon.store.get_transaction(started["transactionId"]).session_id is None
            await core.wait_idle()
            assert len(core.daemon.store.jobs("done", kind=JobKind.OPEN_CARD)) == 1  # only the linked card's open
    finally:
        await csms.stop()
    assert not csms.received(kinds=("invalid", "bad_message"))


async def test_a_card_starts_no_more_than_what_is_left_counting_its_sessions_not_yet_settled(
    clean_chain, tmp_path, keyfile
):
    """The mandate's ``committed`` counts every session opened, settled or not; the cache read it before the
    first session opened, and the chain goes away before it reads it again: the card's next starts, decided
    offline, count that first session (mined after the read) and lock together no more than what is left."""
    net = clean_chain
    proxy = ChainProxy(int(net.rpc_url.rsplit(":", 1)[1]))
    await proxy.resume()
    _, card, grants = await link_card(net, tmp_path, 5, cap=20 * TOKEN, total=30 * TOKEN)
    first, second, third = cp_ids("LEFT1", "LEFT2", "LEFT3")
    settings = {**CARDS, "cards_file": grants, "rpc_url": proxy.url, "cards_poll_s": 600}  # read at start only
    async with running_core(net, tmp_path, keyfile, {first: 1, second: 1, third: 1}, **settings) as core:
        await known(core, card.mandate_id, committed=0)
        async with tapping(core, first, CARD) as one:
            tx = (await next_event(one.stdout, "started"))["transactionId"]
            s = await until(lambda: core.daemon.store.session_by_transaction(tx), 20, "the first card session")
            await wait_chain(net, s.session_id, SessionState.ACTIVE)  # 20 locked; the cache still says 0 committed
            await proxy.pause()
            async with tapping(core, second, CARD) as two:
                assert (await next_event(two.stdout, "started"))["status"] == "Accepted"
                [pending] = core.daemon.store.jobs("pending", kind=JobKind.OPEN_CARD)
                assert pending.args.deposit == 10 * TOKEN  # what is left of 30 after the first session's 20
                async with tapping(core, third, CARD) as three:
                    assert (await next_event(three.stdout, "authorized"))["status"] == "Invalid"  # nothing left
                await proxy.resume()
                s2 = await until(
                    lambda: core.daemon.store.session_by_transaction(pending.args.transaction_id),
                    30,
                    "the second card session",
                )
                await wait_chain(net, s2.session_id, SessionState.ACTIVE, timeout=30)
                await unplug(two)
            await unplug(one)
        await wait_chain(net, s2.session_id, SessionState.SETTLED, timeout=30)
        await wait_chain(net, s.session_id, SessionState.SETTLED, timeout=30)
        assert core.daemon.store.jobs("failed") == []
        assert Mandates(net.w3, net.deployment).get(card.mandate_id).committed == 30 * TOKEN


async def test_a_charge_point_keeping_a_local_list_gets_the_cards_seen_and_their_changes(
    clean_chain, tmp_path, keyfile
):
    """SendLocalList where the charge point keeps a list: a card tapped anywhere enters it Accepted (until the
    mandate's expiry), a revoke makes it Blocked in a Differential update; a charge point without a list
    (GetLocalListVersion -1) is sent none."""
    net = clean_chain
    cards, card, grants = await link_card(net, tmp_path, 4)
    keeper_id, tap_id = cp_ids("LIST", "NOLIST")
    async with running_core(net, tmp_path, keyfile, {keeper_id: 1, tap_id: 1}, cards_file=grants, **CARDS) as core:
        await known(core, card.mandate_id)
        async with charge_point(core, keeper_id, "--local-list") as keeper:
            async with tapping(core, tap_id, CARD.lower()) as node:
                assert (await next_event(node.stdout, "authorized"))["status"] == "Accepted"
                first = await next_event(keeper.stdout, "local_list")
                held = core.daemon.local_lists.held
                await until(
                    lambda: tap_id in held and not held[tap_id].supported, 10, "the list-less charge point asked"
                )
                await unplug(node)
            expiry = datetime.fromtimestamp(core.daemon.cards.cached[card.mandate_id].expiry, timezone.utc)
            assert first["version"] == 1 and first["entries"] == {
                CARD: {"status": "Accepted", "expiryDate": expiry.isoformat().replace("+00:00", "Z")}
            }
            await asyncio.to_thread(cards.remove, CARD)  # the driver revokes the card
            update = await next_event(keeper.stdout, "local_list")
            assert (update["version"], update["updateType"]) == (2, "Differential")
            assert update["entries"][CARD]["status"] == "Blocked"


@contextlib.asynccontextmanager
async def restarted(core: Core):
    """The Core Client of ``core`` run again on its database (a restart)."""
    daemon = Daemon(core.daemon.settings, PASSWORD)
    await daemon.start()
    try:
        await until(lambda: daemon.chain_started, 30, "the daemon's chain side started")
        yield Core(core.net, daemon, core.stations, core.passwords)
    finally:
        await daemon.stop(drain_timeout=5)


async def test_a_charge_point_back_with_the_list_we_sent_gets_only_what_changed(clean_chain, tmp_path, keyfile):
    """The list each charge point accepted is kept in the database: after a restart of the Core Client a charge
    point whose GetLocalListVersion answers that version gets a Differential update of what changed meanwhile,
    not the whole list again as a Full update."""
    net = clean_chain
    cards, card, grants = await link_card(net, tmp_path, 5)
    keeper_id, tap_id = cp_ids("KEEP", "TAP")
    keeper_flags = ("--local-list", "--list-state", str(tmp_path / "keeper-list.json"))  # kept between its runs
    async with running_core(net, tmp_path, keyfile, {keeper_id: 1, tap_id: 1}, cards_file=grants, **CARDS) as core:
        await known(core, card.mandate_id)
        async with tapping(core, tap_id, CARD) as node:
            assert (await next_event(node.stdout, "authorized"))["status"] == "Accepted"
            await unplug(node)
        async with charge_point(core, keeper_id, *keeper_flags) as keeper:
            first = await next_event(keeper.stdout, "local_list")
            assert (first["version"], first["updateType"], list(first["entries"])) == (1, "Full", [CARD])
            held = core.daemon.local_lists.held
            await until(lambda: keeper_id in held and held[keeper_id].version == 1, 10, "the keeper's answer")
        await asyncio.to_thread(cards.remove, CARD)  # the driver revokes the card
        async with restarted(core) as again:
            await until(lambda: again.daemon.cards.read_at is not None, 10, "the card cache read")
            assert again.daemon.cards.cached[card.mandate_id].revoked
            async with charge_point(again, keeper_id, *keeper_flags) as keeper:
                update = await next_event(keeper.stdout, "local_list")
                assert (update["version"], update["updateType"]) == (2, "Differential")
                assert update["entries"][CARD]["status"] == "Blocked"
