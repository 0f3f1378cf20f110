"""The event watcher on a real Anvil: each event handled exactly once across crashes and restarts, and
our stations' tariffs learnt from their TariffSet events."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from core_client.chain.watcher import EventWatcher
from core_client.daemon import make_web3
from core_client.sessions.machine import State
from core_client.sessions.service import SessionService
from core_client.storage.store import Store
from tools.harness.chain import TARIFF, TOKEN
from tools.harness.core import (
    cp_ids,
    funded_driver,
    open_session,
    settings_for,
)

DEPOSIT = 20 * TOKEN


class _CrashOnce(SessionService):
    """A session service that dies in the middle of a block range once (a crash between two events)."""

    crashed = False

    def on_session_requested(self, args, block, tariff):
        if self.store.counts_by_state() and not self.crashed:  # the range's second session
            _CrashOnce.crashed = True
            raise RuntimeError("crash between two events")
        return super().on_session_requested(args, block, tariff)


async def test_events_are_handled_once_across_crashes_and_restarts(clean_chain, tmp_path, keyfile):
    net = clean_chain
    [cp] = cp_ids("EVT")
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    settings = settings_for(net, tmp_path, keyfile, {cp: "pw"})
    driver = await funded_driver(net, 4)
    sessions = [await open_session(net, driver, station_id, 1 + i % 2, DEPOSIT) for i in range(3)]
    store = Store(tmp_path / "events.sqlite")
    w3 = make_web3(settings)

    def watcher(service: SessionService) -> EventWatcher:
        return EventWatcher(w3, net.deployment, net.operator.address, store, service, start_block=settings.start_block)

    first = watcher(_CrashOnce(settings, store))
    await first.initialize()
    cursor = store.cursor()
    with pytest.raises(RuntimeError):
        await first.poll_once()
    assert store.cursor() == cursor and store.get_session(sessions[0]) is None  # all or nothing

    second = watcher(SessionService(settings, store))  # "restarted"
    await second.initialize()
    assert await second.poll_once() > 0
    assert [store.get_session(s).state for s in sessions] == [State.REQUESTED] * 3
    assert store.cursor() == net.w3.eth.block_number
    for s in sessions:
        store.save_session(dataclasses.replace(store.get_session(s), state=State.CHARGING))
    third = watcher(SessionService(settings, store))
    await third.initialize()
    assert await third.poll_once() == 0  # nothing new: nothing handled twice
    assert [store.get_session(s).state for s in sessions] == [State.CHARGING] * 3
    await asyncio.to_thread(net.escrow(driver).open, station_id, 2, DEPOSIT)
    assert await third.poll_once() == 1
    assert store.counts_by_state() == {"charging": 3, "requested": 1}
    store.close()


async def test_the_watcher_learns_our_tariffs_from_their_events(clean_chain, tmp_path, keyfile):
    """The TariffSet events of our stations fill the tariff cache, also with tariffs no session used yet
    (so no getTariff call per tariff); a session carries the tariff it was opened under."""
    net = clean_chain
    [cp] = cp_ids("TRF")
    settings = settings_for(net, tmp_path, keyfile, {cp: "pw"})
    station_id = await asyncio.to_thread(net.add_station, cp, 2)
    driver = await funded_driver(net, 3)
    before = await open_session(net, driver, station_id, 1, DEPOSIT)
    dearer, dearest = (dataclasses.replace(TARIFF, price_per_kwh=TARIFF.price_per_kwh * k) for k in (2, 3))
    operator = net.escrow(net.operator)
    await asyncio.to_thread(operator.set_tariff, station_id, dearer)
    after = await open_session(net, driver, station_id, 2, DEPOSIT)
    await asyncio.to_thread(operator.set_tariff, station_id, dearest)
    store = Store(tmp_path / "tariffs.sqlite")
    service = SessionService(settings, store)
    watcher = EventWatcher(make_web3(settings), net.deployment, net.operator.address, store, service)
    watcher.start_block = settings.start_block
    await watcher.initialize()
    assert await watcher.poll_once() > 0
    assert sorted(watcher.tariffs.values(), key=lambda t: t.price_per_kwh) == [TARIFF, dearer, dearest]
    assert store.get_session(before).tariff == TARIFF and store.get_session(after).tariff == dearer
    store.close()
