"""The daemon's fee bumping setting (issue 19): with ``fee_bump_after_s``, a start transaction that stays
unmined is sent again with the same nonce and a higher fee, and the session starts on whichever version
is mined. Real daemon, real Anvil with automatic mining paused while the transaction waits."""

from __future__ import annotations

import pytest
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound

from core_client.config import Settings
from core_client.sessions.jobs import JobKind
from ev_network.contracts import SessionState
from tools.harness.chain import TOKEN
from tools.harness.core import Core, funded_driver, now_iso, open_session, until, wait_chain


def test_fee_bump_setting_defaults_to_a_minute_and_zero_turns_it_off():
    assert Settings().fee_bump_after_s == 60
    assert Settings(fee_bump_after_s=0).fee_bump_after_s == 0


@pytest.mark.issue(19)
@pytest.mark.core_settings(fee_bump_after_s=0.3)
async def test_a_stuck_start_transaction_is_bumped_by_the_daemon_and_the_bumped_version_counts(core: Core):
    net, w3 = core.net, core.net.w3
    raw = await core.raw(core.a)
    driver = await funded_driver(net, 4)
    session_id = await open_session(net, driver, core.stations[core.a], 1, 10 * TOKEN)
    tag = (await raw.next_call("RemoteStartTransaction", timeout=15))[3]["idTag"]
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        start = {"connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": now_iso()}
        assert (await raw.call("StartTransaction", start))[2]["idTagInfo"]["status"] == "Accepted"
        job = await until(
            lambda: (j := core.daemon.store.job(JobKind.START, session_id)) is not None and j.tx_hash and j, 10, "sent"
        )
        first = HexBytes(job.tx_hash)
        original = w3.eth.get_transaction(first)  # pending in the node's pool
        sender = core.daemon.sender
        await until(lambda: len(sender.hashes(first)) >= 2, 15, "a bumped version of the start transaction")
        versions = sender.hashes(first)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    w3.provider.make_request("evm_mine", [])
    await wait_chain(net, session_id, SessionState.ACTIVE)
    [mined] = [h for h in versions if _mined(w3, h)]
    assert mined in versions[1:]  # a bumped version was mined (the node kept only the newest)
    won = w3.eth.get_transaction(mined)
    assert won["nonce"] == original["nonce"] and won["maxFeePerGas"] >= 1.125 * original["maxFeePerGas"]
    await until(lambda: core.daemon.store.job(JobKind.START, session_id).block is not None, 10, "start job done")
    await raw.close()


def _mined(w3: Web3, tx_hash: HexBytes) -> bool:
    try:
        return w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
    except TransactionNotFound:
        return False
