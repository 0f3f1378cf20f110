"""The load benchmark's chain behaves as a pruned node (no state kept per past block), and the Anvil
memory probe (benchmarks/anvil_memory.py) runs."""

from __future__ import annotations

import pytest

from benchmarks.anvil_memory import Node, measure
from benchmarks.load.chain import bench_anvil


def test_the_load_benchmark_chain_keeps_no_state_of_past_blocks() -> None:
    anvil = bench_anvil().start()
    try:
        node = Node.attach(anvil.port)
        node.rpc("eth_sendTransaction", {"from": node.accounts[0], "to": node.accounts[1], "value": "0x1"})
        for _ in range(3):
            node.rpc("evm_mine")
        assert int(node.rpc("eth_getBalance", node.accounts[1], "latest"), 16) > 0
        with pytest.raises(RuntimeError, match="eth_getBalance"):
            node.rpc("eth_getBalance", node.accounts[1], "0x1")  # a pruned node has no state of block 1
    finally:
        anvil.stop()


def test_the_memory_probe_reports_each_kind() -> None:
    for kind in ("blocks", "replacements"):
        figures = measure(kind, count=5, slots=50, anvil_args=["--prune-history"])
        assert figures["requests"] == 5 and figures["rss_after_mb"] > 0
