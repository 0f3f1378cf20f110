"""Tokens the Core Client vouches for as cards (a roaming eMSP's token remote-started under its mandate): kept
in the database on both engines, so a Core Client restarted between RemoteStartTransaction and the charge
point's StartTransaction still knows the token; valid at that charge point and connector only, until it
expires or starts."""

from __future__ import annotations

import time
from pathlib import Path

from core_client.config import Settings
from core_client.sessions.cards import Card, CardMandate
from core_client.sessions.service import SessionService
from core_client.storage.migrations import schema_version
from core_client.storage.store import Store
from ev_network.mandates import new_salt, token_ref

SALT = new_salt()
TOKEN = "APP-0001"
EXPIRY = int(time.time()) + 3600  # the mandate's, one for every copy


def emsp_card() -> Card:
    ref = token_ref(SALT, TOKEN)
    mandate = CardMandate(
        mandate_id=9, salt=SALT, payer="0x" + "22" * 20, cap_per_session=20, total=50, committed=0,
        expiry=EXPIRY, revoked=False, any_token=False, operator_named=True,
        token_refs=frozenset({ref}),
    )  # fmt: skip
    return Card(mandate, ref)


def test_a_vouched_token_survives_a_restart_at_its_connector_only(db_location: str | Path):
    store = Store(db_location)
    SessionService(Settings(), store).cards.expect(TOKEN, emsp_card(), "CP-1", 2, ttl_s=60)
    store.close()

    store = Store(db_location)  # the Core Client restarted before the charge point's StartTransaction
    try:
        cards = SessionService(Settings(), store).cards
        assert schema_version(store.db, "cards") >= 1
        card = cards.find(TOKEN.lower(), "CP-1", 2)
        assert card == emsp_card()
        assert cards.find(TOKEN, "CP-1") == card  # Authorize names no connector
        assert cards.find(TOKEN, "CP-1", 1) is None  # another connector of the charge point
        assert cards.find(TOKEN, "CP-2", 2) is None  # another charge point
        cards.expect(TOKEN, None, "CP-1", 2)
        assert cards.find(TOKEN, "CP-1", 2) is None  # vouched for no longer
    finally:
        store.close()


def test_a_vouched_token_expires_and_a_new_start_at_the_connector_replaces_the_old(db_location: str | Path):
    store = Store(db_location)
    try:
        cards = SessionService(Settings(), store).cards
        cards.expect(TOKEN, emsp_card(), "CP-1", 1, ttl_s=-1)
        assert cards.find(TOKEN, "CP-1", 1) is None  # expired
        cards.expect(TOKEN, emsp_card(), "CP-1", 1, ttl_s=60)
        cards.expect("APP-0002", emsp_card(), "CP-1", 1, ttl_s=60)  # a later START_SESSION at that connector
        assert cards.find(TOKEN, "CP-1", 1) is None and cards.find("APP-0002", "CP-1", 1) is not None
        cards.expect(TOKEN, emsp_card())  # vouched for at any charge point (a tap answered at Authorize)
        assert cards.find(TOKEN, "CP-7", 3) is not None
    finally:
        store.close()
