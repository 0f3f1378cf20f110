"""``core-client sessions held|settle-held|reject-held``: the operator decides held sessions through the
running daemon's control endpoint (POST /command), so its state machine applies the decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from core_client.cli.common import ConfigOpt
from core_client.cli.control_client import call_control
from core_client.config import load_settings
from core_client.errors import clean_errors
from core_client.sessions.held import decision_line

sessions_app = typer.Typer(
    help="Held sessions: list them with their evidence, settle or reject them.", no_args_is_help=True
)

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="Control endpoint (default: from the config).", show_default=False),
]
SessionArg = Annotated[str, typer.Argument(metavar="SESSION", help="Session id: 0x and 64 hex digits.")]


def _post(config: Path | None, url: str | None, params: dict[str, Any]) -> Any:
    return call_control(load_settings(config), url, "/command", params)


@sessions_app.command("held")
@clean_errors
def held(
    config: ConfigOpt = None, url: UrlOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List held sessions: why each is held, its readings (start, last trusted, claimed stop) and records."""
    rows = _post(config, url, {"action": "held"})["held"]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        reclaim = (
            datetime.fromtimestamp(r["reclaim_at"], UTC).strftime("%Y-%m-%d %H:%M UTC") if r["reclaim_at"] else "-"
        )
        typer.echo(
            f"{r['session_id']}  {r['charge_point_id']}/{r['connector']} idTag {r['id_tag']}\n"
            f"    held: {r['reason']}\n"
            f"    meter start {r['meter_start']} Wh, last trusted {r['last_trusted_reading']} Wh, "
            f"claimed stop {r['claimed_meter_stop']} Wh; signed records: {', '.join(r['records']) or 'none'}\n"
            f"    {'settle-held settles at the last trusted reading' if r['can_settle'] else 'signed station: no settle without valid records'}"
            f"; the driver can reclaim from {reclaim}"
        )
    if not rows:
        typer.echo("no held sessions")


@sessions_app.command("settle-held")
@clean_errors
def settle_held(session: SessionArg, config: ConfigOpt = None, url: UrlOpt = None) -> None:
    """Settle a held session at its last trusted reading (plain stations; refused where the rules forbid it)."""
    typer.echo(decision_line(_post(config, url, {"action": "settle_held", "session": session})))


@sessions_app.command("reject-held")
@clean_errors
def reject_held(session: SessionArg, config: ConfigOpt = None, url: UrlOpt = None) -> None:
    """Reject a held session and refund the driver (where the escrow allows it)."""
    typer.echo(decision_line(_post(config, url, {"action": "reject_held", "session": session})))
