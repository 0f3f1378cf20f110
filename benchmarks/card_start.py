"""Start latency of an RFID card: how long a driver waits at the charge point, and how long until the
session is active on chain.

    python -m benchmarks.card_start [--taps 5]

A fresh Anvil with the network deployed; a driver links a card (the wallet library), the Core Client
(in-process, the test harness's daemon) has its grant; the ocpp-rpc charge point (tests/interop, npm)
taps the card ``--taps`` times, one session after the other: Authorize -> answer and StartTransaction ->
answer are timed by the charge point, StartTransaction answered -> the session Active on chain by this
script (it polls the escrow). Each session is then unplugged and settled before the next tap. Anvil mines
each transaction at once (no block time): the chain part is the Core Client's queue, not block time.
The last line of output is the JSON result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.load.report import summary_ms
from ev_network.chain import connect
from ev_network.contracts import SessionState
from ev_network.devaccounts import dev_account
from tools.devchain import Anvil, deploy_with_brownie
from tools.harness.chain import TOKEN, Net
from tools.harness.core import make_keyfile, running_core, until
from tools.harness.interop import CHARGE_POINT, next_event
from tools.harness.wallet import driver_wallet
from wallet.cards import Cards

CARD = "04A2B3C4D5E6F7"


def network(url: str, work: Path) -> Net:
    out = work / "deployment.json"
    deployment = deploy_with_brownie(url, out, env={"EVN_START_TIMEOUT": "300"})
    admin, operator, payout = (dev_account(i) for i in range(3))
    net = Net(connect(url, deployment), deployment, out, url, admin, operator, payout, operator, payout, [], {})
    net.escrow(admin).register_operator(operator.address, payout.address, "Card Bench GmbH")
    net.drivers = [dev_account(5)]
    net.fund(net.drivers[0])
    return net


async def tap(core, net: Net, cp: str) -> dict[str, float]:
    """One card session: its three latencies in seconds."""
    args = [core.url, cp, core.passwords[cp], "--card", CARD, "--wait"]
    node = await asyncio.create_subprocess_exec(
        "node", str(CHARGE_POINT), *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        await next_event(node.stdout, "ready")
        authorized = await next_event(node.stdout, "authorized")
        started = await next_event(node.stdout, "started")
        answered = time.monotonic()
        assert (authorized["status"], started["status"]) == ("Accepted", "Accepted"), (authorized, started)
        tx = started["transactionId"]
        escrow = net.escrow()

        def active() -> bool:
            s = core.daemon.store.session_by_transaction(tx)
            return s is not None and escrow.get_session(s.session_id).state is SessionState.ACTIVE

        await until(active, 30, "the card's session active on chain", interval=0.005)
        on_chain = time.monotonic() - answered
        node.stdin.write(b"unplug\n")
        await node.stdin.drain()
        await next_event(node.stdout, "stopped")
        await node.wait()
        await core.wait_idle(30)  # settled before the next tap
        return {"authorize": authorized["ms"] / 1000, "start": started["ms"] / 1000, "active": on_chain}
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()


async def measure(taps: int, work: Path) -> dict:
    with Anvil() as anvil:
        net = await asyncio.to_thread(network, anvil.url, work)
        driver = net.drivers[0]
        cards = Cards(driver_wallet(net, driver), work / "wallet")
        card = await asyncio.to_thread(cards.add, CARD, net.operator.address, 20 * TOKEN, 1000 * TOKEN)
        grants = work / "grants.txt"
        grants.write_text(card.grant + "\n")
        keyfile = make_keyfile(work / "operator", net.operator)
        cp = "CARD-BENCH-1"
        async with running_core(net, work, keyfile, {cp: 1}, cards_file=grants, cards_poll_s=0.5) as core:
            await until(lambda: core.daemon.cards.cached, 20, "the card cache")
            runs = [await tap(core, net, cp) for _ in range(taps)]
    return {
        "taps": taps,
        "authorize_to_answer": summary_ms(r["authorize"] for r in runs),
        "start_to_answer": summary_ms(r["start"] for r in runs),
        "start_answered_to_active_on_chain": summary_ms(r["active"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--taps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        result = asyncio.run(measure(args.taps, Path(work)))
    print(json.dumps(result), file=sys.stdout)


if __name__ == "__main__":
    main()
