"""EV Network demo: the whole journey on a local chain, in one command (``make demo``).

Starts Anvil (state kept in .demo/ so a second run continues; --fresh starts over), deploys with
the Brownie script, registers an operator with three stations and tariffs, funds a driver, starts
the Core Client daemon and simulated OCPP charge points, and runs three sessions that end the three
ways a session ends: the driver stops it, the pre-paid budget runs out, the car is unplugged; and a card
session (scripts/demo_card.py): the driver links an RFID card to a payment mandate, the operator accepts
its grant, a charge point reads the card, the session is paid from the wallet. Each is settled on chain; the demo prints the invoices and a balance table that must add up. The first
station's meter signs its readings (OCMF): that session settles on the signed records, and its
invoice shows the wallet's verification of them against the key registered on chain."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ev_network.session_ids import hex_session_id, label_of_driver, session_label
from scripts.demo_card import CHARGE_POINT as CARD_STATION
from scripts.demo_card import GRANTS_FILE, link_card, tap_card
from scripts.demo_chain import TOKEN, DemoChain, StaleState, start_chain
from scripts.demo_parts import connect_charge_points, driver_wallet, health, start_core_client
from tools.devchain import ROOT, exit_on_sigterm
from wallet.core import Wallet
from wallet.invoice import render_text
from wallet.meter_proof import check_invoice_proof

console = Console(highlight=False, width=max(110, Console().width))
LOG_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+)\s+[\w.]+: (?P<message>.*)$")
SESSION_ID = re.compile(r"(?<=session )0x[0-9a-f]{64}\b")  # not tx hashes: same shape


class DemoFailed(Exception):
    """A step failed; the message names the step and what to do."""


@dataclass(frozen=True)
class Scenario:
    title: str
    charge_point_id: str
    connector: int
    deposit: int
    ending: str  # "driver", "budget" or "unplug"


SCENARIOS = (
    Scenario("driver stops in the app", "VOLT-BER-001", 1, 20 * TOKEN, "driver"),
    Scenario("pre-paid budget exhausted", "VOLT-BER-002", 1, 6 * TOKEN, "budget"),
    Scenario("car unplugged at the station", "VOLT-POT-001", 1, 15 * TOKEN, "unplug"),
)
TOP_UP = 60 * TOKEN


@contextmanager
def step(name: str, hint: str):
    console.rule(f"[bold cyan]{name}")
    try:
        yield
    except (KeyboardInterrupt, DemoFailed):
        raise
    except Exception as exc:
        raise DemoFailed(f"step '{name}' failed: {exc}\n  what to do: {hint}") from exc


def say(text: str) -> None:
    console.print(f"  {text}")


def core_log(line: str, with_driver: bool = False, source: str = "core-client") -> None:
    """One line of the Core Client's log, without its timestamp and logger name. The daemon logs full
    session ids (0x + 64 hex digits); shown here as their labels, which name a session among its
    driver's (the demo has one driver; ``with_driver`` adds a short form of the driver's address)."""
    match = LOG_LINE.match(line)
    level, message = (match["level"], match["message"]) if match else ("INFO", line)
    message = SESSION_ID.sub(lambda m: short_session(int(m[0], 16), with_driver), message)
    text = Text(f"  {source} | ", style="dim")
    text.append(message if level == "INFO" else f"{level}: {message}", style="yellow" if level != "INFO" else "")
    console.print(text)


def short_session(session_id: int, with_driver: bool = False) -> str:
    """``2/1`` (lane 2, first session), or ``2/1 of 0x7099…79C8`` with the driver."""
    return label_of_driver(session_id) if with_driver else session_label(session_id)


async def run_session(wallet: Wallet, chain: DemoChain, scenario: Scenario, station_id: int | None = None) -> dict:
    """Open ``scenario``'s session (at its charge point's station, or at ``station_id``), end it, check it settled."""
    station_id = chain.station_ids[scenario.charge_point_id] if station_id is None else station_id
    opened = await asyncio.to_thread(wallet.open, station_id, scenario.connector, scenario.deposit)
    tag = f"[bold]session {session_label(opened.session_id)}[/bold] ({scenario.title})"
    say(f"{tag}: opened at {scenario.charge_point_id}/{scenario.connector}, deposit {wallet.fmt(scenario.deposit)}")
    stop_sent = False
    async for update in wallet.tracker.awatch(opened.session_id, poll_interval=0.2, timeout=90):
        if update.phase != "charging":
            say(f"{tag}: {update.phase}")
        if update.phase == "charging" and scenario.ending == "driver" and not stop_sent and update.elapsed_s >= 2:
            stop_sent = True
            say(f"{tag}: the driver taps stop (requestStop on chain)")
            await asyncio.to_thread(wallet.request_stop, opened.session_id)
    status = await asyncio.to_thread(wallet.session_status, opened.session_id)
    if status.state.lower() != "settled":
        raise DemoFailed(f"session {hex_session_id(opened.session_id)} ended {status.state}, not settled")
    return {
        "session_id": hex_session_id(opened.session_id),
        "label": session_label(opened.session_id),
        "scenario": scenario.ending,
        "state": "settled",
    }


async def journey(chain: DemoChain, state_dir: Path, summary: dict) -> None:
    with step("Core Client", "see the core-client lines above; `core-client run --help`"):
        core = start_core_client(chain, state_dir, core_log, cards_file=state_dir / GRANTS_FILE, cards_poll_s=0.5)
        summary["core_client"] = core.control_url
    try:
        with step("Charge points", "the simulated charge points could not connect; see the core-client log"):
            charge_points = await connect_charge_points(core)
            await asyncio.sleep(0.5)
            say(f"connected: {', '.join(health(core)['connected_charge_points'])}")
        with step("Driver", "the driver's wallet could not be funded; is the chain still up?"):
            wallet = driver_wallet(chain, state_dir)
            await asyncio.to_thread(wallet.top_up, TOP_UP, chain.admin)
            say(f"driver {wallet.address} topped up by {wallet.fmt(TOP_UP)}")
            say(
                "a driver's sessions are labelled lane/sequence: the three run at once, each on its own lane "
                "(lane 0 shows just the sequence number); the full id is the driver's address, lane and sequence"
            )
        with step("Card", "the card could not be linked or its grant was not read; see the core-client lines above"):
            card = await link_card(chain, core, wallet, state_dir, say)
        before = balances(chain, wallet)
        with step("Sessions", "a session did not settle; the core-client lines above say where it stopped"):
            *results, card_result = await asyncio.gather(
                *(run_session(wallet, chain, s) for s in SCENARIOS),
                tap_card(chain, charge_points[CARD_STATION], wallet, card, say),
            )
        after = balances(chain, wallet)
        with step("Invoices", "an invoice could not be built from the chain"):
            for result in results:
                inv = wallet.invoice(result["session_id"])
                console.print(render_text(inv))
                result["meter_verified"] = inv.meter_proof.verified if inv.meter_proof else None
                if inv.meter_proof is not None:  # what `ev-wallet verify` checks
                    check_invoice_proof(inv.meter_proof, inv.session_id, inv.meter_start_wh, inv.meter_stop_wh)
                    say(f"session {result['label']}: the meter's signed records verify (ev-wallet verify)")
            console.print(render_text(card_result.pop("invoice")))
            say(f"the card session's invoice is the payer's: {card_result['payer']} (ev-wallet invoice)")
        summary["sessions"] = list(results)
        summary["card"] = card_result
        summary["balances"] = balance_table(before, after, TOP_UP, wallet)
    finally:
        for cp in locals().get("charge_points", {}).values():
            await cp.close()
        code = await asyncio.to_thread(core.stop)
        say(f"Core Client stopped (exit code {code})")


def balances(chain: DemoChain, wallet: Wallet) -> dict[str, int]:
    token = chain.token()
    return {
        "driver": token.balance_of(wallet.address),
        "operator payout": token.balance_of(chain.payout.address),
        "escrow": token.balance_of(chain.deployment.escrow),
    }


def balance_table(before: dict[str, int], after: dict[str, int], minted: int, wallet: Wallet) -> dict:
    table = Table(title="Balances (after the top-up)")
    for column in ("account", "before", "after", "change"):
        table.add_column(column, justify="right" if column != "account" else "left")
    for name in before:
        table.add_row(name, wallet.fmt(before[name]), wallet.fmt(after[name]), wallet.fmt(after[name] - before[name]))
    total_change = sum(after[n] - before[n] for n in before)
    table.add_row("[bold]total", "", "", f"[bold]{wallet.fmt(total_change)}")
    console.print(table)
    adds_up = total_change == 0
    console.print("  the changes add up to zero: tokens only moved" if adds_up else "  [red]the changes do not add up")
    if not adds_up:
        raise DemoFailed("balances do not add up: report this as a bug")
    return {"before": before, "after": after, "minted_before": minted, "adds_up": adds_up}


def start_chain_or_start_over(state_dir: Path, port: int | None = None) -> DemoChain:
    """The chain kept in ``state_dir``; a state of an older EV Network version (its contracts and the
    Core Client's database cannot be carried over) is put aside in ``state_dir/stale-<time>`` and the
    demo starts over."""
    try:
        return start_chain(state_dir, say, port=port)
    except StaleState as stale:
        old = state_dir / f"stale-{time.strftime('%Y%m%d-%H%M%S')}"
        old.mkdir()
        for entry in state_dir.iterdir():
            if not entry.name.startswith("stale-"):
                entry.rename(old / entry.name)
        say(f"{stale}: moved it to {old}, starting over")
        return start_chain(state_dir, say, port=port)


def main() -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--fresh", action="store_true", help="start a new chain instead of continuing .demo/")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".demo", help="where chain and daemon state live")
    parser.add_argument("--summary", type=Path, help="also write a JSON summary to this file (used by the tests)")
    parser.add_argument(
        "--proxy", action="store_true", help="proxy mode: the Core Client in front of a stand-in CSMS (a new chain)"
    )
    parser.add_argument(
        "--ocpi", action="store_true", help="OCPI mode: the Core Client as an eMSP of a stand-in CSMS (a new chain)"
    )
    args = parser.parse_args()
    exit_on_sigterm()  # a SIGTERM runs the finally blocks below: Core Client and Anvil are stopped
    if args.proxy or args.ocpi:  # own chain and state, new each time: earlier runs' anchors and imports would not fit
        args.state_dir, args.fresh = args.state_dir / ("proxy" if args.proxy else "ocpi"), True
    if args.fresh:
        shutil.rmtree(args.state_dir, ignore_errors=True)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    summary: dict = {"ok": False}
    chain = None
    try:
        with step("Chain", "is Node/npm set up? run `make setup`; delete .demo/ or use --fresh if the state is broken"):
            chain = start_chain_or_start_over(args.state_dir)
        if args.proxy:
            from scripts.demo_proxy import proxy_journey  # here: it takes this module, whatever its name

            asyncio.run(proxy_journey(chain, args.state_dir, summary, sys.modules[__name__]))
            done = "the CSMS's session recorded, the wallet's settled, its record verified against the chain"
        elif args.ocpi:
            from scripts.demo_ocpi import ocpi_journey

            asyncio.run(ocpi_journey(chain, args.state_dir, summary, sys.modules[__name__]))
            done = "a wallet session through the CSMS's OCPI interface, settled on chain from its CDR"
        else:
            asyncio.run(journey(chain, args.state_dir, summary))
            done = "three sessions and a card session settled on chain"
        summary["ok"] = True
        console.rule(f"[bold green]Done in {time.monotonic() - started:.0f} s: {done}")
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted: shutting everything down")
    except DemoFailed as exc:
        console.print(f"[bold red]{exc}")
    finally:
        if chain is not None:
            chain.anvil.stop()
            say(f"Anvil stopped; chain state kept in {args.state_dir} (--fresh to start over)")
        if args.summary:
            args.summary.write_text(json.dumps(summary, indent=2, default=str))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
