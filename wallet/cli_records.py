"""``ev-wallet verify-record FILE``: check a transaction record exported by a CPO (``core-client records
export TRANSACTION --proof``) against the chain alone, the way an MSP checks its driver's record.
``ev-wallet verify SESSION``: re-check the meter's signed records of a settled session, online from the
chain or offline from the invoice JSON (``--invoice FILE``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ev_network.contracts import Escrow
from ev_network.deployment import Deployment
from ev_network.errors import read_json_model
from ev_network.records import RecordAnchor, RecordError, RecordExport, verify_export
from ev_network.session_ids import session_label
from wallet.cli_common import (
    AccountAddr,
    DeploymentFile,
    JsonOut,
    RpcUrl,
    SessionArg,
    clean_errors,
    config_from,
    emit,
    open_chain,
    open_wallet,
    session_arg,
)
from wallet.errors import WalletError
from wallet.invoice import Invoice
from wallet.meter_proof import check_invoice_proof, describe


@clean_errors
def verify_record(
    file: Annotated[
        Path, typer.Argument(help="Record file written by `core-client records export --proof`.", metavar="FILE")
    ],
    id_tag: Annotated[
        str | None, typer.Option("--id-tag", help="Also check the record is of this idTag (the MSP's own card).")
    ] = None,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
    as_json: JsonOut = False,
) -> None:
    """Verify a transaction record against the chain: its Merkle proof must lead to the root the
    deployment's RecordAnchor holds for the operator's anchor. Prints which anchor, which operator and
    when; a record changed, dropped or reordered after anchoring fails, one not anchored yet says so.
    Nothing in the file is trusted but the record itself: contract, root and operator come from the chain."""
    cfg = config_from(rpc_url, deployment, None)
    exported = RecordExport.load(file)
    network = Deployment.load(cfg.deployment_file)
    if network.record_anchor is None:
        raise RecordError(f"the deployment {cfg.deployment_file} has no record_anchor contract to verify against")
    w3 = open_chain(cfg.rpc_url, network)
    verified = verify_export(exported, RecordAnchor(w3, network.record_anchor), Escrow(w3, network))
    if id_tag is not None and not exported.record.matches_id_tag(id_tag):
        raise RecordError(f"record {exported.index} is anchored, but it is not of idTag {id_tag}")
    if as_json:
        anchor = verified.anchor
        names = {"index": verified.index, "operator_name": verified.operator_name, "station_id": verified.station_id}
        emit({"verified": True, **names, **vars(anchor)})
    else:
        typer.echo(verified.describe(exported.record))


@clean_errors
def verify(
    session: SessionArg,
    invoice: Annotated[
        Path | None, typer.Option("--invoice", help="Check offline, from this invoice JSON (`invoice --format json`).")
    ] = None,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
    account: AccountAddr = None,
    as_json: JsonOut = False,
) -> None:
    """Re-check the meter's signed records of a settled session: both signatures against the meter key
    registered on chain, the records of this session, the billed readings equal to the signed ones.
    Online (default) everything is read from the chain; with --invoice FILE nothing is (the key is the
    one the invoice names). Exit 1 with one line saying what failed."""
    if invoice is not None:
        inv = read_json_model(Invoice, invoice, WalletError, "ev-wallet invoice JSON")
        if session != session_label(inv.session_id) and _as_int(session) != inv.session_id:
            raise WalletError(f"{invoice} is the invoice of session {session_label(inv.session_id)}, not {session}")
    else:
        wallet = open_wallet(config_from(rpc_url, deployment, account), need_account=False)
        inv = wallet.invoice(session_arg(wallet, session))
    proof = check_invoice_proof(inv.meter_proof, inv.session_id, inv.meter_start_wh, inv.meter_stop_wh)
    if as_json:
        emit({"verified": True, "invoice": inv.number, "energy_wh": proof.energy_wh, **proof.model_dump()})
    else:
        typer.echo(f"invoice {inv.number}: {proof.energy_wh} Wh signed by meter {proof.begin.meter_serial}")
        typer.echo("\n".join(describe(proof)))


def _as_int(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None
