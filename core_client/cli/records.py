"""``core-client records``: the transaction record of every OCPP transaction, its anchors on chain, and
exports with inclusion proofs for MSPs (checked with ``ev-wallet verify-record FILE``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from core_client.cli.common import ConfigOpt
from core_client.config import Settings, load_settings
from core_client.errors import clean_errors
from core_client.records.log import TransactionLog
from ev_network.chain import connect
from ev_network.deployment import Deployment
from ev_network.keys import keyfile_address, load_keyfile, resolve_password
from ev_network.records import RecordAnchor, RecordError
from ev_network.tx import TxSender

records_app = typer.Typer(
    help="The transaction log of every OCPP transaction, anchored on chain: list, anchor, export with proof.",
    no_args_is_help=True,
)


def _open(config: Path | None) -> tuple[Settings, TransactionLog]:
    """The config and the transaction log in its database, bound to the deployment's RecordAnchor."""
    settings = load_settings(config)
    if isinstance(settings.database, Path) and not settings.database.exists():
        raise RecordError(f"no Core Client database at {settings.database}: is this the daemon's config?")
    deployment = Deployment.load(settings.deployment_file)
    if deployment.record_anchor is None:
        raise RecordError(
            f"the deployment {settings.deployment_file} has no record_anchor: deploy the network again "
            "(make deploy) with a version that deploys RecordAnchor"
        )
    anchors = RecordAnchor(connect(settings.rpc_url, deployment, wait=False, retries=False), deployment.record_anchor)
    return settings, TransactionLog(settings.database, anchors)


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@records_app.command("list")
@clean_errors
def records_list(
    config: ConfigOpt = None,
    start: Annotated[int, typer.Option("--from", help="First log index to show.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
) -> None:
    """List the logged records (index, charge point, transaction, energy, stop) and the anchor of each."""
    _, log = _open(config)
    rows = []
    for entry in log.entries(start):
        anchor = log.anchor_for(entry.index)
        rows.append({"index": entry.index, **entry.record.model_dump(), "anchor": anchor and anchor.anchor_id})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("index", "charge point", "connector", "transaction", "stopped (UTC)", "Wh", "reason", "anchor")
    for row in rows:
        table.add_row(
            str(row["index"]),
            row["charge_point_id"],
            str(row["connector"]),
            str(row["transaction_id"]),
            _when(row["stop_time"]),
            str(row["meter_stop"] - row["meter_start"]),
            row["stop_reason"],
            "not yet" if row["anchor"] is None else str(row["anchor"]),
        )
    Console().print(table)
    typer.echo(f"{len(log)} records, {log.anchored_until()} anchored in {len(log.local_anchors())} anchors")


@records_app.command("export")
@clean_errors
def records_export(
    transaction: Annotated[int, typer.Argument(help="OCPP transaction id.", show_default=False)],
    config: ConfigOpt = None,
    proof: Annotated[bool, typer.Option("--proof", help="Include the inclusion proof and the anchor.")] = False,
    charge_point: Annotated[
        str | None, typer.Option("--charge-point", help="Charge point id, when transaction ids repeat.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to FILE (default: stdout).")] = None,
) -> None:
    """Export the record of TRANSACTION as JSON; with --proof, with its Merkle proof and anchor (read
    from the chain first), ready for `ev-wallet verify-record FILE`."""
    settings, log = _open(config)
    operator = keyfile_address(settings.keystore)
    entry = log.find(transaction, charge_point)
    if proof:
        log.sync(operator)
        exported = log.export(entry, operator)
    else:
        exported = log.export(entry, operator).model_copy(update={"anchor": None, "proof": []})
    text = exported.model_dump_json(indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"wrote record {entry.index} (transaction {transaction}) to {out}", err=True)
    if proof and exported.anchor is None:
        typer.echo(f"record {entry.index} is not anchored yet: no proof (run `core-client records anchor`)", err=True)


@records_app.command("anchor")
@clean_errors
def records_anchor(config: ConfigOpt = None) -> None:
    """Anchor every record not anchored yet, now, in one transaction (the daemon does it by its policy).
    Sends from the operator key; the keystore password comes from password_env or is asked for."""
    settings, log = _open(config)
    password = resolve_password(settings.password_env, f"Password for {settings.keystore}: ")
    sender = TxSender(log.anchors.w3, load_keyfile(settings.keystore, password))
    anchored = log.anchor(sender)
    if anchored is None:
        typer.echo(f"nothing to anchor: all {len(log)} records are anchored")
        return
    typer.echo(
        f"anchor {anchored.anchor_id}: records {anchored.first_index}-{anchored.last_index}, "
        f"root {anchored.root}, block {anchored.block}"
    )
