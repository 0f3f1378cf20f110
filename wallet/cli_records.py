"""``ev-wallet verify-record FILE``: check a transaction record exported by a CPO (``core-client records
export TRANSACTION --proof``) against the chain alone, the way an MSP checks its driver's record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ev_network.contracts import Escrow
from ev_network.deployment import Deployment
from ev_network.records import RecordAnchor, RecordError, RecordExport, verify_export
from wallet.cli_common import DeploymentFile, JsonOut, RpcUrl, clean_errors, config_from, emit, open_chain


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
