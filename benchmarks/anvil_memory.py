"""Which requests make Anvil's memory grow: a fresh Anvil, a state of the load benchmark's size, then one
kind of request in a loop while Anvil's resident memory (VmRSS of /proc/<pid>/status) is sampled.

    python -m benchmarks.anvil_memory [--slots 20000] [--count 300] [--anvil-args "--prune-history"]

Prints one JSON object: per request kind, Anvil's RSS before and after, the growth per request and the
requests per second. Kinds: ``blocks`` (automined transactions, one block each, as the Core Client's
settles and the anchor are mined on the benchmark's chain), ``estimate_pending`` (eth_estimateGas at
"pending", as TxSender.estimate), ``receipt_poll`` (eth_getTransactionReceipt of a mined hash),
``get_logs`` (eth_getLogs over every block), ``replacements`` (a transaction replaced with a higher fee
while mining is paused, then mined: TxSender's fee bumping). Short runs only (shared machine).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.devchain import anvil_binary, free_port, stop_process

FILLER = "0x" + "11" * 20  # an account whose storage stands in for the escrow's sessions and stations
KINDS = ("blocks", "estimate_pending", "receipt_poll", "get_logs", "replacements")


class Node:
    """One Anvil process (started here, or ``attach`` to a running one) and a JSON-RPC client to it."""

    def __init__(self, port: int, process: subprocess.Popen | None = None) -> None:
        self.port, self.process = port, process
        self.accounts: list[str] = self.rpc("eth_accounts")

    @classmethod
    def attach(cls, port: int) -> Node:
        return cls(port)

    @classmethod
    def start(cls, extra_args: list[str]) -> Node:
        port = free_port()
        command = [anvil_binary(), "--port", str(port), "--accounts", "2", "--silent", *extra_args]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                return cls(port, process)
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    stop_process(process, timeout=5)
                    raise RuntimeError(f"anvil did not start: {command}") from None
                time.sleep(0.1)

    def rpc(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            reply = json.loads(response.read())
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def anvil_pid(self) -> int:
        """Anvil's own process: npm's wrapper (node_modules/.bin/anvil) runs it as a child."""
        assert self.process is not None, "an attached node: its process is not ours"
        pid = self.process.pid
        while children := Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            pid = int(children[0])
        return pid

    def rss_mb(self) -> float:
        with open(f"/proc/{self.anvil_pid()}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=10)


def fill_state(node: Node, slots: int) -> None:
    """``slots`` storage slots, as the escrow holds for its stations, drivers and sessions."""
    node.rpc("anvil_setCode", FILLER, "0x00")
    for i in range(slots):
        node.rpc("anvil_setStorageAt", FILLER, hex(i), "0x" + f"{i + 1:064x}")
    node.rpc("evm_mine")


def transfer(node: Node, **extra: str) -> dict[str, str]:
    return {"from": node.accounts[0], "to": node.accounts[1], "value": "0x1", "data": "0x" + "ab" * 200, **extra}


def requests_of(kind: str, node: Node) -> Callable[[], Any]:
    """One request (or one transaction) of ``kind``."""
    if kind == "blocks":
        return lambda: node.rpc("eth_sendTransaction", transfer(node))
    if kind == "estimate_pending":
        return lambda: node.rpc("eth_estimateGas", transfer(node), "pending")
    if kind == "receipt_poll":
        mined = node.rpc("eth_sendTransaction", transfer(node))
        return lambda: node.rpc("eth_getTransactionReceipt", mined)
    if kind == "get_logs":
        return lambda: node.rpc("eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest"})
    if kind == "replacements":
        node.rpc("evm_setAutomine", False)

        def replace() -> Any:  # a transaction, its replacement at +20 % fee, then a block
            nonce = hex(int(node.rpc("eth_getTransactionCount", node.accounts[0], "pending"), 16))
            for fee in (2 * 10**9, 24 * 10**8):
                node.rpc(
                    "eth_sendTransaction",
                    transfer(node, nonce=nonce, maxFeePerGas=hex(fee), maxPriorityFeePerGas=hex(fee // 2)),
                )
            return node.rpc("evm_mine")

        return replace
    raise ValueError(kind)


def measure(kind: str, count: int, slots: int, anvil_args: list[str]) -> dict[str, Any]:
    node = Node.start(anvil_args)
    try:
        fill_state(node, slots)
        request = requests_of(kind, node)
        before = node.rss_mb()
        t0 = time.monotonic()
        for _ in range(count):
            request()
        seconds = time.monotonic() - t0
        time.sleep(0.5)
        after = node.rss_mb()
        return {
            "requests": count,
            "rss_before_mb": round(before, 1),
            "rss_after_mb": round(after, 1),
            "kb_per_request": round((after - before) * 1024 / count, 1),
            "requests_per_s": round(count / seconds, 1),
        }
    finally:
        node.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=20_000, help="storage slots in the state before the loop")
    parser.add_argument("--count", type=int, default=300, help="requests of each kind")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--anvil-args", default="", help='extra Anvil options, e.g. "--prune-history"')
    args = parser.parse_args(argv)
    anvil_args = shlex.split(args.anvil_args)
    result = {
        "anvil_args": anvil_args,
        "state_slots": args.slots,
        "kinds": {kind: measure(kind, args.count, args.slots, anvil_args) for kind in args.kinds.split(",")},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
