"""Gas benchmark of the EV Network contracts: what each transaction of a charging session costs.

    python -m benchmarks.gas [--batches 1,10,50]      (make bench-gas)

Starts its own Anvil, deploys with the Brownie script, registers an operator and a station, funds
drivers, and reads ``gasUsed`` from the receipts of: ERC-20 transfer (to an address that already
holds tokens and to a fresh one), approve, open (allowance given before), openWithPermit (for exactly
the deposit, and for an unlimited allowance as the wallet's first open does), start,
settle, settleAt (settled at a given end time, as an OCPI CDR gives), and for 1, 10 and 50 sessions one startBatch and one settleBatch (one driver per session, so
every refund goes to a different address). Figures are steady-state: a warm-up session was settled first (the payout
address holds tokens) and another session stays open (the escrow never drops to a zero balance).

Per-session totals are open + start + the session's share of the settle transaction, compared with
the targets (150,000 gas for all of one session's transactions; 100,000 per session amortised at
batch 50) and with the peer reference (Share&Charge, about 340,000 gas per session over five
transactions). The signed path ("no proof, no pay") is measured the same way at a station with a
registered meter key, in both record shapes the escrow takes: settleSigned and settleSignedBatch with the
simulator meter's OCMF Begin and End records (two signatures; about 350 bytes each, as a real meter's), and
with one record holding both readings (one signature; about 450 bytes). Their extra gas per session over the
plain settle (targets: at most 30,000 for two records, 20,000 for one) is reported single and at each batch
size. A payment mandate's card session (openSession: open and start in one transaction, for a returning
payer) is compared with today's open + start. Progress goes to stderr; a table, then the JSON result as the
last line, to stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from benchmarks.args import whole_numbers
from benchmarks.gas_report import TARGET_SIGNED_EXTRA, document, render, session_row, signed_row
from ev_network.chain import connect
from ev_network.contracts import Escrow, Token
from ev_network.deployment import Deployment
from ev_network.devaccounts import dev_account
from ev_network.mandates import Mandates, new_salt, token_ref
from ev_network.ocmf import Reason, parse, session_id_tag, signed_settlement
from ev_network.pricing import Tariff
from ev_network.tx import TxSender
from simulator.meter import SigningMeter
from tools.devchain import Anvil, deploy_with_brownie

TOKEN = 10**18
TARIFF = Tariff(price_per_kwh=35 * TOKEN // 100, session_fee=TOKEN // 2)
DEPOSIT = 20 * TOKEN
FIRST_DRIVER = 10  # dev accounts 0-2 are admin, operator, payout


def progress(message: str) -> None:
    print(f"[gas] {message}", file=sys.stderr, flush=True)


def breakdown(w3: Any, receipt: dict) -> dict[str, int]:
    """Split a transaction's gas: intrinsic (21,000 + calldata), the token calls it made (Anvil's
    callTracer), and the escrow's own execution (storage, events, checks, call overhead)."""
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    intrinsic = 21_000 + sum(4 if b == 0 else 16 for b in bytes(tx["input"]))
    trace = w3.provider.make_request(
        "debug_traceTransaction", [receipt["transactionHash"].to_0x_hex(), {"tracer": "callTracer"}]
    ).get("result", {})
    token_calls = sum(int(call["gasUsed"], 16) for call in trace.get("calls", []))
    return {
        "intrinsic": intrinsic,
        "token_calls": token_calls,
        "escrow_own": receipt["gasUsed"] - intrinsic - token_calls,
    }


class Bench:
    """The deployed network and one TxSender per account used."""

    def __init__(self, rpc_url: str, deployment_file: Path) -> None:
        self.deployment = Deployment.load(deployment_file)
        self.w3 = connect(rpc_url, self.deployment)
        self.admin, self.operator, self.payout = dev_account(0), dev_account(1), dev_account(2)
        self._senders: dict[str, TxSender] = {}
        self._transaction_ids = itertools.count(1)  # OCPP transaction ids the operator hands out

    def sender(self, account: LocalAccount) -> TxSender:
        return self._senders.setdefault(account.address, TxSender(self.w3, account))

    def escrow(self, account: LocalAccount) -> Escrow:
        return Escrow(self.w3, self.deployment, self.sender(account))

    def token(self, account: LocalAccount) -> Token:
        return Token(self.w3, self.deployment.token, self.sender(account))

    def fund(self, drivers: list[LocalAccount], approve: bool) -> None:
        """Mint to every driver (and give the escrow an unlimited allowance), all in flight at once."""
        minter = self.token(self.admin)
        pending = [(minter.sender, minter.mint(d.address, 1_000 * TOKEN, wait=False)) for d in drivers]
        if approve:
            pending += [
                (self.sender(d), self.token(d).approve(self.deployment.escrow, 2**256 - 1, wait=False)) for d in drivers
            ]
        for sender, tx_hash in pending:
            sender.wait(tx_hash)

    def session(
        self, station: int, drivers: list[LocalAccount], batched: bool = False
    ) -> tuple[list[int], int, int, list[dict]]:
        """Open, start and settle one session per driver (start and settle in one batch each if
        ``batched``); return (open gas of each, start gas, settle gas, [open, start, settle] receipts
        of the first session)."""
        opened = [self.escrow(d).open(station, 1, DEPOSIT) for d in drivers]
        ids = [self.escrow(drivers[0]).session_id_from(r) for r in opened]
        tx_ids = [next(self._transaction_ids) for _ in ids]
        operator = self.escrow(self.operator)
        if batched:
            started = operator.start_batch(ids, tx_ids, [1_000] * len(ids))
            settled = operator.settle_batch(ids, [1_000 + 5_000 + i for i in range(len(ids))])
        else:
            started = operator.start(ids[0], tx_ids[0], 1_000)
            settled = operator.settle(ids[0], 12_000)
        return [r["gasUsed"] for r in opened], started["gasUsed"], settled["gasUsed"], [opened[0], started, settled]

    def session_settled_at(self, station: int, driver: LocalAccount) -> int:
        """Open and start one session of ``driver``, then settle it with settleAt at its start block's time (an
        OCPI session settled at its CDR's end); the settleAt gas."""
        session_id = self.escrow(driver).session_id_from(self.escrow(driver).open(station, 1, DEPOSIT))
        operator = self.escrow(self.operator)
        started = operator.start(session_id, next(self._transaction_ids), 1_000)
        ended_at = self.w3.eth.get_block(started["blockNumber"])["timestamp"]
        return operator.settle_at(session_id, 12_000, ended_at)["gasUsed"]

    def mandate_session(self, station: int, payer: LocalAccount) -> dict[str, int]:
        """A mandate of ``payer`` (who gave the escrow an allowance) naming the operator and one card; one
        session opened and started under it, then settled; the gas of each."""
        salt = new_salt()
        mandates = Mandates(self.w3, self.deployment, self.sender(payer))
        created = mandates.create(
            [self.operator.address], DEPOSIT, 10 * DEPOSIT, 2**39, token_refs=[token_ref(salt, "04A2B3C4D5E6F7")]
        )
        operator = Mandates(self.w3, self.deployment, self.sender(self.operator))
        mandate_id = mandates.mandate_id_from(created)
        ref = token_ref(salt, "04A2B3C4D5E6F7")
        opened = operator.open_session(mandate_id, ref, station, 1, DEPOSIT, next(self._transaction_ids), 1_000)
        self.escrow(self.operator).settle(operator.session_id_from(opened), 6_000)
        again = operator.open_session(mandate_id, ref, station, 1, DEPOSIT, next(self._transaction_ids), 1_000)
        self.escrow(self.operator).settle(operator.session_id_from(again), 6_000)
        return {"mandate_create": created["gasUsed"], "open_under_mandate": again["gasUsed"]}

    def signed_session(
        self, station: int, meter: SigningMeter, drivers: list[LocalAccount], batched: bool, shape: str
    ) -> int:
        """Open and start one session per driver at the metered ``station``, then settle them on their signed
        records in ``shape`` (settleSignedBatch if ``batched``); return the settle transaction's gas."""
        opened = [self.escrow(d).open(station, 1, DEPOSIT) for d in drivers]
        ids = [self.escrow(drivers[0]).session_id_from(r) for r in opened]
        operator = self.escrow(self.operator)
        operator.start_batch(ids, [next(self._transaction_ids) for _ in ids], [1_000] * len(ids))
        settlements = []
        for i, session_id in enumerate(ids):
            tag = session_id_tag(session_id)
            if shape == "one_record":
                begin, end = None, parse(meter.transaction_record(1_000, 6_000 + i, tag))
            else:
                begin = parse(meter.record(Reason.BEGIN, 1_000, tag))
                end = parse(meter.record(Reason.END, 6_000 + i, tag))
            settlements.append(signed_settlement(session_id, begin, end, meter.public_key_der))
        if batched:
            return operator.settle_signed_batch(settlements)["gasUsed"]
        return operator.settle_signed(settlements[0])["gasUsed"]


def measure(batches: list[int]) -> dict[str, Any]:
    """Run the whole benchmark on a fresh Anvil; return the result document."""
    drivers_needed = 4 + sum(batches)
    with Anvil(accounts=FIRST_DRIVER + drivers_needed + 2) as anvil, tempfile.TemporaryDirectory() as tmp:
        progress(f"Anvil on {anvil.url}; deploying with Brownie (scripts/deploy.py)")
        started = time.monotonic()
        deploy_with_brownie(anvil.url, Path(tmp) / "deployment.json")
        progress(f"deployed in {time.monotonic() - started:.1f} s")
        bench = Bench(anvil.url, Path(tmp) / "deployment.json")
        registrar, operator = bench.escrow(bench.admin), bench.escrow(bench.operator)
        registrar.register_operator(bench.operator.address, bench.payout.address, "Bench Charging")
        station = operator.station_id_from(operator.add_station("CP-BENCH-1", 2, TARIFF))
        meter = SigningMeter.for_charge_point("CP-BENCH-SIGNED")
        metered = operator.station_id_from(operator.add_station("CP-BENCH-SIGNED", 2, TARIFF, meter.public_key_der))
        progress(f"deriving and funding {drivers_needed} drivers")
        drivers = [dev_account(FIRST_DRIVER + i) for i in range(drivers_needed)]
        bench.fund(drivers, approve=True)
        permit_driver = dev_account(FIRST_DRIVER + drivers_needed)
        standing_driver = dev_account(FIRST_DRIVER + drivers_needed + 1)
        bench.fund([permit_driver, standing_driver], approve=False)

        progress("warm-up: one session settled (payout holds tokens), one left open (escrow never empty)")
        bench.session(station, drivers[:1])
        bench.escrow(drivers[1]).open(station, 2, DEPOSIT)  # stays open

        tx: dict[str, int] = {}
        progress("ERC-20 transfer, approve")
        token = bench.token(drivers[2])
        tx["erc20_transfer_to_holder"] = token.transfer(drivers[3].address, TOKEN)["gasUsed"]
        tx["erc20_transfer_to_fresh_address"] = token.transfer(dev_account(900).address, TOKEN)["gasUsed"]
        tx["erc20_approve_first"] = bench.token(permit_driver).approve(bench.deployment.escrow, DEPOSIT)["gasUsed"]

        progress("single session of a new driver, then of the same driver again: open, start, settle")
        (first_open,), tx["start_first_session"], tx["settle_first_session"], _ = bench.session(station, drivers[2:3])
        tx["open_first_session"] = first_open
        (tx["open"],), tx["start"], tx["settle"], receipts = bench.session(station, drivers[2:3])
        split = {name: breakdown(bench.w3, r) for name, r in zip(("open", "start", "settle"), receipts, strict=True)}
        progress("the same driver again, settled with settleAt (at a given end time, as an OCPI CDR's)")
        tx["settle_at"] = bench.session_settled_at(station, drivers[2])

        progress("open with an exact approve before it (allowance back to zero), then openWithPermit")
        tx["open_after_exact_approve"] = bench.escrow(permit_driver).open(station, 1, DEPOSIT)["gasUsed"]
        permit = bench.token(permit_driver).sign_permit(permit_driver, bench.deployment.escrow, DEPOSIT, 2**40)
        tx["open_with_permit"] = bench.escrow(permit_driver).open_with_permit(station, 2, DEPOSIT, permit)["gasUsed"]
        progress("openWithPermit for an unlimited allowance (the wallet's first open; later opens need no permit)")
        unlimited = 2**256 - 1
        permit = bench.token(standing_driver).sign_permit(standing_driver, bench.deployment.escrow, unlimited, 2**40)
        receipt = bench.escrow(standing_driver).open_with_permit(station, 2, DEPOSIT, permit, allowance=unlimited)
        tx["open_with_standing_permit"] = receipt["gasUsed"]

        per_session: dict[str, Any] = {
            "single": session_row(tx["open"], tx["start"], tx["settle"], 1, tx["settle"]),
            "single_new_driver": session_row(
                tx["open_first_session"], tx["start_first_session"], tx["settle_first_session"], 1, tx["settle"]
            ),
            "single_with_permit": session_row(tx["open_with_permit"], tx["start"], tx["settle"], 1, tx["settle"]),
            "single_with_standing_permit": session_row(
                tx["open_with_standing_permit"], tx["start"], tx["settle"], 1, tx["settle"]
            ),
            "single_approve_each_time": session_row(
                tx["open_after_exact_approve"], tx["start"], tx["settle"], 1, tx["settle"], tx["erc20_approve_first"]
            ),
        }
        progress("payment mandate: create (one operator, one card), then a card session opened and started under it")
        tx.update(bench.mandate_session(station, drivers[3]))
        mandate = {
            "open_and_start_under_mandate": tx["open_under_mandate"],
            "open_plus_start": tx["open"] + tx["start"],
            "met": tx["open_under_mandate"] <= tx["open"] + tx["start"],
        }
        signed: dict[str, Any] = {}
        for shape in TARGET_SIGNED_EXTRA:
            progress(f"signed path, {shape}: settleSigned of one session (a returning driver) at the metered station")
            tx[f"settle_signed_{shape}"] = bench.signed_session(metered, meter, drivers[3:4], False, shape)
            signed[shape] = {"single": signed_row(tx[f"settle_signed_{shape}"], tx["settle"], 1)}
        pool = drivers[4:]
        for size in batches:
            group, pool = pool[:size], pool[size:]
            for label, suffix in (("new drivers", "_new_drivers"), ("the same drivers again", "")):
                progress(f"startBatch and settleBatch of {size} sessions, one per driver: {label}")
                opens, start_gas, settle_gas, _ = bench.session(station, group, batched=True)
                tx[f"start_batch_{size}{suffix}"] = start_gas
                tx[f"settle_batch_{size}{suffix}"] = settle_gas
                per_session[f"batch_{size}{suffix}"] = session_row(
                    sum(opens) / size, start_gas / size, settle_gas / size, size, settle_gas
                )
            for shape in TARGET_SIGNED_EXTRA:  # returning drivers, as the plain row
                progress(f"signed path, {shape}: settleSignedBatch of {size} sessions, the same drivers again")
                signed_gas = bench.signed_session(metered, meter, group, True, shape)
                tx[f"settle_signed_batch_{size}_{shape}"] = signed_gas
                signed[shape][f"batch_{size}"] = signed_row(signed_gas, tx[f"settle_batch_{size}"], size)
    doc = document(tx, per_session, batches)
    doc["breakdown_single"] = split
    doc["signed"] = signed
    doc["mandate"] = mandate
    doc["targets"]["signed_extra_max"] = TARGET_SIGNED_EXTRA
    doc["targets"]["signed_extra_met"] = {
        shape: all(row["extra"] <= TARGET_SIGNED_EXTRA[shape] for row in rows.values())
        for shape, rows in signed.items()
    }
    doc["record_bytes"] = {"two_records": [len(parse(meter.record(Reason.BEGIN, 1, "EV" + "0" * 18)).payload)] * 2}
    doc["record_bytes"]["one_record"] = [len(parse(meter.transaction_record(1, 2, "EV" + "0" * 18)).payload)]
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gas",
        description="Gas used by each EV Network transaction and per charging session, single and batched, "
        "on a fresh local Anvil. Progress on stderr; a table, then one JSON line (the last line) on stdout.",
    )
    parser.add_argument(
        "--batches",
        type=whole_numbers(1, 200),
        default="1,10,50",
        help="settleBatch sizes, comma separated (default %(default)s)",
    )
    doc = measure(sorted(set(parser.parse_args(argv).batches)))
    print("\n".join(render(doc)))
    print(json.dumps(doc, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
