"""Gas benchmark of the transaction record: what anchoring costs per record at 1, 100 and 10,000 records
per anchor (one transaction each, whatever the volume), and the off-chain work around it.

    python -m benchmarks.anchor_gas [--sizes 1,100,10000]      (make bench-anchor)

Starts its own Anvil, deploys with the Brownie script, registers an operator, logs the records through
the Core Client's TransactionLog (record_start + record_stop, as the daemon would) and anchors them with
TransactionLog.anchor. Figures are steady-state: the operator's first anchor (which also creates its
anchor list, about 17,000 gas more) is made beforehand and reported apart. For each size: gasUsed of the
anchor, gas per record, the Merkle root build time, the proof length and the time to export and verify
one record against the chain. Progress goes to stderr; a table, then the JSON result as the last line,
to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.args import whole_numbers
from core_client.records.log import TransactionLog
from ev_network.chain import connect
from ev_network.contracts import Escrow
from ev_network.deployment import Deployment
from ev_network.devaccounts import dev_account
from ev_network.records import RecordAnchor, verify_export
from ev_network.tx import TxSender
from tools.devchain import Anvil, deploy_with_brownie


def progress(message: str) -> None:
    print(f"[anchor-gas] {message}", file=sys.stderr, flush=True)


def log_records(log: TransactionLog, n: int) -> float:
    """Append ``n`` complete records; return the seconds it took."""
    started, first = time.monotonic(), len(log) + 1
    for tx in range(first, first + n):
        log.record_start("CP-BENCH-1", 1, tx, f"RFID{tx:08d}", 10 * tx, 1_764_547_200 + tx)
        log.record_stop(tx, 10 * tx + 7_400, "EVDisconnected", 1_764_547_200 + tx + 3600)
    return time.monotonic() - started


def anchor_once(log: TransactionLog, sender: TxSender, escrow: Escrow, n: int) -> dict[str, Any]:
    """Log ``n`` records, anchor them in one transaction, and export and verify the last one."""
    append_s = log_records(log, n)
    started = time.monotonic()
    root = log.root_of(log.anchored_until(), n)
    root_s = time.monotonic() - started
    anchor = log.anchor(sender)
    assert anchor is not None and anchor.root == root and anchor.count == n
    tx_hash = log.anchors.w3.eth.get_block(anchor.block)["transactions"][0]
    receipt = log.anchors.w3.eth.get_transaction_receipt(tx_hash)
    started = time.monotonic()
    exported = log.export(log.entry(anchor.last_index), sender.address)
    verified = verify_export(exported, log.anchors, escrow)
    verify_s = time.monotonic() - started
    assert verified.anchor.anchor_id == anchor.anchor_id
    return {
        "records": n,
        "gas_used": receipt["gasUsed"],
        "gas_per_record": round(receipt["gasUsed"] / n, 2),
        "transactions": 1,
        "append_records_per_s": round(n / append_s, 1),
        "merkle_root_s": round(root_s, 4),
        "proof_length": len(exported.proof),
        "export_and_verify_s": round(verify_s, 4),
    }


def measure(sizes: list[int]) -> dict[str, Any]:
    with Anvil() as anvil, tempfile.TemporaryDirectory() as tmp:
        progress(f"Anvil on {anvil.url}; deploying with Brownie (scripts/deploy.py)")
        deployment_file = Path(tmp) / "deployment.json"
        deploy_with_brownie(anvil.url, deployment_file)
        deployment = Deployment.load(deployment_file)
        w3 = connect(anvil.url, deployment)
        admin, operator = dev_account(0), dev_account(1)
        Escrow(w3, deployment, TxSender(w3, admin)).register_operator(operator.address, operator.address, "Bench CPO")
        sender, escrow = TxSender(w3, operator), Escrow(w3, deployment)
        log = TransactionLog(Path(tmp) / "records.sqlite", RecordAnchor(w3, deployment.record_anchor))
        first = anchor_once(log, sender, escrow, 1)
        progress(f"first anchor of the operator (creates its list): {first['gas_used']} gas")
        rows = []
        for n in sizes:
            progress(f"logging and anchoring {n} records")
            rows.append(anchor_once(log, sender, escrow, n))
        gas = [row["gas_used"] for row in rows]
        return {
            "benchmark": "anchor_gas",
            "first_anchor_gas": first["gas_used"],
            "anchors": rows,
            "gas_spread": max(gas) - min(gas),
        }


def render(doc: dict[str, Any]) -> list[str]:
    lines = [f"{'records':>8} {'gas':>7} {'gas/record':>11} {'proof':>6} {'root s':>8} {'verify s':>9}"]
    for row in doc["anchors"]:
        lines.append(
            f"{row['records']:>8} {row['gas_used']:>7} {row['gas_per_record']:>11} {row['proof_length']:>6} "
            f"{row['merkle_root_s']:>8} {row['export_and_verify_s']:>9}"
        )
    lines.append(f"one transaction per anchor; gas spread across sizes {doc['gas_spread']} (calldata bytes only)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.anchor_gas", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=whole_numbers(1, 1_000_000),
        default="1,100,10000",
        help="records per anchor, comma separated (%(default)s)",
    )
    doc = measure(parser.parse_args(argv).sizes)
    print("\n".join(render(doc)))
    print(json.dumps(doc, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
