"""The sessions side's chain reads (a session's state before its RemoteStart, a station's meter key) on a real
Anvil: asked for together they go to the node as one JSON-RPC batch; each reader gets its own answer (a
revert to its reader only); a chain that is down reaches every reader."""

from __future__ import annotations

import asyncio

import pytest
from web3 import Web3

from core_client.chain.batched_reads import BatchedReads
from core_client.chain.operator_check import OperatorChain
from ev_network.contracts import SessionState
from ev_network.errors import ChainUnavailable
from tools.devchain import free_port
from tools.harness.chain import Net
from tools.harness.contracts import reverts
from tools.harness.core import cp_ids, funded_driver, open_session

DEPOSIT = 5 * 10**18


def counted(batches: list[list]) -> object:
    """A ``run_blocking`` for BatchedReads that runs the batch in a thread, as the default does, noting its keys."""

    async def run(read_many, keys):
        batches.append(list(keys))
        return await asyncio.to_thread(read_many, keys)

    return run


async def test_reads_asked_for_together_go_as_one_batch_each_with_its_answer(clean_chain: Net) -> None:
    net = clean_chain
    [cp] = cp_ids("BATCHREAD")
    station = await asyncio.to_thread(net.add_station, cp, 2)
    driver = await funded_driver(net, 2)
    opened = [await open_session(net, driver, station, 1, DEPOSIT) for _ in range(2)]
    escrow = net.escrow()
    batches: list[list[int]] = []
    sessions = BatchedReads(escrow.get_sessions, counted(batches))
    asked = [opened[0], 12345, opened[1], opened[0]]  # an id twice, one that names no session
    answers = await asyncio.gather(*(sessions.get(i) for i in asked))
    assert batches == [[opened[0], 12345, opened[1]]]  # one request, each id once
    assert [a.session_id for a in answers] == asked
    requested, none = SessionState.REQUESTED, SessionState.NONE
    assert [a.state for a in answers] == [requested, none, requested, requested]
    assert answers[0].driver == driver.address and answers[0].deposit == DEPOSIT

    stations = BatchedReads(escrow.get_stations, counted(batches))
    known, unknown = asyncio.ensure_future(stations.get(station)), asyncio.ensure_future(stations.get(4_000_000))
    await asyncio.wait([known, unknown])
    assert (await known).charge_point_id == cp
    with reverts("UnknownStation"):  # the revert goes to its own reader only
        await unknown


async def test_reads_asked_for_while_a_batch_is_on_its_way_go_as_the_next_batch(clean_chain: Net) -> None:
    escrow = clean_chain.escrow()
    batches: list[list[int]] = []
    sessions = BatchedReads(escrow.get_sessions, counted(batches))
    first = asyncio.ensure_future(sessions.get(1))
    while not batches:  # the first read is on its way
        await asyncio.sleep(0)
    later = [asyncio.ensure_future(sessions.get(i)) for i in (2, 3, 4)]
    await asyncio.gather(first, *later)
    assert batches == [[1], [2, 3, 4]]


async def test_a_chain_that_is_down_reaches_every_reader(net: Net) -> None:
    dead = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{free_port()}", request_kwargs={"timeout": 0.5}))
    chain = OperatorChain(dead, net.deployment, net.operator.address, "http://dead")
    assert await asyncio.gather(chain.session_state(1), chain.session_state(2)) == [None, None]  # unknown: None
    with pytest.raises(ChainUnavailable):
        await chain.meter_key(1)


async def test_the_operator_chain_reads_states_and_meter_keys_through_batches(clean_chain: Net) -> None:
    net = clean_chain
    [cp] = cp_ids("OPCHAIN")
    station = await asyncio.to_thread(net.add_station, cp, 2)
    driver = await funded_driver(net, 3)
    session_id = await open_session(net, driver, station, 1, DEPOSIT)
    chain = OperatorChain(net.w3, net.deployment, net.operator.address, net.rpc_url)
    states = await asyncio.gather(chain.session_state(session_id), chain.session_state(99))
    assert states == [SessionState.REQUESTED, SessionState.NONE]
    assert await chain.meter_key(station) == b""
