"""The load benchmark's chain behaves as a pruned node (the state of old blocks is not kept, that of
the latest few is: a read at "latest" never fails because a block was mined meanwhile), and the Anvil
memory probe (benchmarks/anvil_memory.py) runs."""

from __future__ import annotations

import threading

import pytest

from benchmarks.anvil_memory import Node, measure
from benchmarks.load.chain import RECENT_STATES, bench_anvil


def test_the_load_benchmark_chain_keeps_no_state_of_past_blocks() -> None:
    anvil = bench_anvil().start()
    try:
        node = Node.attach(anvil.port)
        node.rpc("eth_sendTransaction", {"from": node.accounts[0], "to": node.accounts[1], "value": "0x1"})
        for _ in range(RECENT_STATES + 2):
            node.rpc("evm_mine")
        assert int(node.rpc("eth_getBalance", node.accounts[1], "latest"), 16) > 0
        with pytest.raises(RuntimeError, match="eth_getBalance"):
            node.rpc("eth_getBalance", node.accounts[1], "0x1")  # a pruned node has no state of block 1
    finally:
        anvil.stop()


def test_reads_at_latest_do_not_fail_while_blocks_are_mined() -> None:
    anvil = bench_anvil().start()
    try:
        node = Node.attach(anvil.port)
        mined, failed = threading.Event(), []

        def mine() -> None:  # automine: a block per transaction, as the settles and the drivers' opens
            while not mined.is_set():
                node.rpc("eth_sendTransaction", {"from": node.accounts[0], "to": node.accounts[1], "value": "0x1"})

        miner = threading.Thread(target=mine)
        miner.start()
        try:
            for _ in range(400):  # the Core Client's view calls (getSession) are eth_call at "latest"
                try:
                    node.rpc("eth_call", {"to": node.accounts[1], "data": "0x"}, "latest")
                except RuntimeError as error:  # before: BlockOutOfRangeError, 12 to 70 of 400 here
                    failed.append(str(error))
        finally:
            mined.set()
            miner.join()
        assert not failed, failed[:3]
        assert int(node.rpc("eth_blockNumber"), 16) > 10  # blocks were mined meanwhile
    finally:
        anvil.stop()


def test_the_memory_probe_reports_each_kind() -> None:
    for kind in ("blocks", "replacements"):
        figures = measure(kind, count=5, slots=50, anvil_args=["--prune-history"])
        assert figures["requests"] == 5 and figures["rss_after_mb"] > 0
