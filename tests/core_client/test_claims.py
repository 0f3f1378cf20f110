"""Charge point claims among instances on one real PostgreSQL (core_client.storage.claims): a charge point
moves with its epoch; an instance that lost it writes none of its readings over the new holder's; the
leader acts for the charge points nobody alive holds. On SQLite the one instance holds everything."""

from __future__ import annotations

import dataclasses

from core_client.sessions.machine import SessionRecord, State
from core_client.sessions.readings import Live
from core_client.storage.claims import Claims, LocalClaims, claims_for
from core_client.storage.store import Store
from ev_network.pricing import Tariff
from ev_network.session_ids import make_session_id


def _charging(store: Store) -> int:
    """A session charging at CP-1, in ``store``."""
    s = SessionRecord(
        session_id=make_session_id("0x" + "ab" * 20, 0, 7),
        station_id=3,
        charge_point_id="CP-1",
        connector=1,
        driver="0x" + "ab" * 20,
        deposit=10**19,
        tariff=Tariff(price_per_kwh=10**17, session_fee=0),
    )
    s = dataclasses.replace(s, state=State.CHARGING, transaction_id=1, meter_start=1000, meter_last=1000)
    store.insert_session(s)
    store.save_session(s)
    return s.session_id


def test_a_charge_point_moved_to_another_instance_keeps_the_new_instances_readings(pg_url):
    store_a, store_b = Store(pg_url), Store(pg_url)  # two instances, each with its own pool
    a, b = Claims(store_a.db, "a"), Claims(store_b.db, "b")
    session_id = _charging(store_a)
    live_a, live_b = Live(store_a, claims=a), Live(store_b, claims=b)
    assert a.claim("CP-1") == 1
    live_a.reading(live_a.session(session_id).update(meter_last=1500, meter_at=10.0))
    live_a.flush()
    assert store_b.get_session(session_id).meter_last == 1500
    live_a.reading(live_a.session(session_id).update(meter_last=1700, meter_at=11.0))  # not written yet ...
    assert b.claim("CP-1") == 2  # ... when the charge point reconnects to b
    live_b.reading(live_b.session(session_id).update(meter_last=1600, meter_at=12.0))
    live_b.flush()
    live_a.flush()  # a's stale reading is dropped: b holds the charge point now
    assert store_a.get_session(session_id).meter_last == 1600
    assert a.mine() == {} and b.mine() == {"CP-1": 2}
    assert not a.release("CP-1", 1)  # a's late goodbye does not free b's claim
    assert b.mine() == {"CP-1": 2}
    assert b.release("CP-1", 2) and b.mine() == {}
    store_a.close()
    store_b.close()


def test_a_session_read_through_live_carries_the_other_instances_state_and_its_own_newer_reading(pg_url):
    store_a, store_b = Store(pg_url), Store(pg_url)
    a = Claims(store_a.db, "a")
    session_id = _charging(store_a)
    live_a = Live(store_a, claims=a)
    a.claim("CP-1")
    live_a.reading(live_a.session(session_id).update(meter_last=1500, meter_at=10.0))
    stored = store_b.get_session(session_id)  # the leader (b) records the driver's stop wish
    store_b.save_session(stored.update(stop_wanted="driver"))
    seen = live_a.session(session_id)
    assert (seen.stop_wanted, seen.meter_last) == ("driver", 1500)
    store_a.close()
    store_b.close()


def test_the_leader_acts_for_charge_points_no_live_instance_holds(pg_url):
    store = Store(pg_url)
    a, b = Claims(store.db, "a"), Claims(store.db, "b")
    a.beat("leader", "ws://a", "http://a")
    b.beat("standby", "ws://b", "http://b")
    b.claim("CP-1")
    holders = a.holders()
    assert holders == {"CP-1": "b"}
    assert b.acts_for("CP-1", False, holders) and not a.acts_for("CP-1", True, holders)
    assert a.acts_for("CP-2", True, holders) and not b.acts_for("CP-2", False, holders)
    store.db.execute("UPDATE instances SET seen_at = seen_at - 60 WHERE instance_id = 'b'")  # b went silent
    assert a.acts_for("CP-1", True, a.holders())
    assert [(i["instance"], i["alive"], i["charge_points"]) for i in a.instances()] == [
        ("a", True, 0),
        ("b", False, 1),
    ]
    b.leave()
    assert [i["instance"] for i in a.instances()] == ["a"] and a.holders() == {}
    store.close()


def test_alone_on_sqlite_the_instance_holds_every_charge_point(tmp_path):
    store = Store(tmp_path / "cc.sqlite")
    claims = claims_for(store.db)
    assert type(claims) is LocalClaims and not claims.shared
    assert claims.acts_for("CP-9", False, claims.holders()) and claims.still_mine({"CP-9"}) == {"CP-9"}
    store.close()
