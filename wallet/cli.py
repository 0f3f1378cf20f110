"""``ev-wallet``: the driver's EV Wallet on the command line (a thin layer over :mod:`wallet.core`)."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ev_network.session_ids import hex_session_id
from wallet.cli_accounts import account_app
from wallet.cli_cards import card_app
from wallet.cli_common import (
    AccountAddr,
    DeploymentFile,
    JsonOut,
    LiveUrl,
    RpcUrl,
    SessionArg,
    SessionJsonOut,
    StationArg,
    amount_arg,
    clean_errors,
    config_from,
    decimal_arg,
    emit,
    live_client,
    live_data,
    minter_account,
    open_wallet,
    session_arg,
)
from wallet.cli_records import verify, verify_record
from wallet.config import WalletConfig
from wallet.core import Wallet
from wallet.display import (
    LiveSession,
    held_lines,
    held_notes,
    history_table,
    live_lines,
    quote_lines,
    stations_table,
    status_lines,
)
from wallet.invoice import render_json, render_pdf, render_text, save_invoice
from wallet.live_client import LiveClient
from wallet.units import format_amount

HELP = """The driver's EV Wallet: pre-pay a charging session into the EV Network escrow, follow it live,
and get an invoice built from chain data.

Amounts are whole tokens with decimals (12.5), converted exactly with the token's decimals.
STATION is a station id or an OCPP charge point id. SESSION is the short label of one of the
account's sessions, as shown by charge and history (7: the 7th session of lane 0; 2/7: the 7th of lane
2, used when sessions overlap), or the full session id (0x + 64 hex digits: the driver's address, the
lane and the number; decimal also works). Read commands take --json, which gives session ids in full
(0x + 64 hex digits) next to their label.

Environment: EVN_WALLET_HOME (wallet directory, default ~/.ev-wallet), EVN_RPC_URL (node, default
http://127.0.0.1:8545), EVN_DEPLOYMENT (deployment file, default deployments/local.json),
EVN_WALLET_PASSWORD (keystore password; asked for when unset), EVN_LIVE_URL (the Core Client's live data
endpoint: charge and status then show a running session's energy and cost; the invoice is built from
chain data only).
"""

app = typer.Typer(
    name="ev-wallet",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(account_app, name="account")
app.add_typer(card_app, name="card")
app.command("verify-record")(verify_record)
app.command("verify")(verify)


@app.command()
@clean_errors
def balance(
    rpc_url: RpcUrl = None, deployment: DeploymentFile = None, account: AccountAddr = None, as_json: JsonOut = False
) -> None:
    """Show the account's token balance."""
    wallet = open_wallet(config_from(rpc_url, deployment, account))
    units, token = wallet.balance(), wallet.token_info
    if as_json:
        emit(
            {
                "address": wallet.address,
                "balance": units,
                "amount": format_amount(units, token.decimals),
                "symbol": token.symbol,
                "decimals": token.decimals,
                "token": token.address,
            }
        )
    else:
        typer.echo(f"{wallet.address}: {wallet.fmt(units)}")


@app.command()
@clean_errors
def topup(
    amount: Annotated[
        str, typer.Argument(help="Whole tokens to add, e.g. 50 or 12.5.", show_default=False, metavar="AMOUNT")
    ],
    minter_keyfile: Annotated[
        Path | None, typer.Option("--minter-keyfile", help="Keyfile of an account with MINTER_ROLE.")
    ] = None,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
    account: AccountAddr = None,
) -> None:
    """Top up the account: mint tokens to it (needs a minter).

    The minter (an account with MINTER_ROLE) signs the mint; its key comes from --minter-keyfile (password
    EVN_MINTER_PASSWORD or asked) or EVN_MINTER_KEY. On a local dev chain (id 31337) Anvil's first
    account, the deployer, is used when neither is given."""
    wallet = open_wallet(config_from(rpc_url, deployment, account))
    units = amount_arg(wallet, amount)
    tx = wallet.top_up(units, minter_account(wallet, minter_keyfile))
    typer.echo(f"topped up {wallet.fmt(units)}: balance {wallet.fmt(wallet.balance())} (tx {tx})")


@app.command()
@clean_errors
def stations(rpc_url: RpcUrl = None, deployment: DeploymentFile = None, as_json: JsonOut = False) -> None:
    """List the stations: operator, connectors, active flag and tariff."""
    wallet = open_wallet(config_from(rpc_url, deployment, None), need_account=False)
    found = wallet.stations()
    if as_json:
        emit({"token": wallet.token_info.model_dump(), "stations": [s.model_dump(mode="json") for s in found]})
    else:
        Console().print(stations_table(wallet, found))


@app.command()
@clean_errors
def quote(
    station: StationArg,
    kwh: Annotated[str, typer.Option("--kwh", help="Energy to charge, in kWh (e.g. 20 or 7.5).", show_default=False)],
    minutes: Annotated[str, typer.Option("--minutes", help="Charging time in minutes (for a time fee).")] = "0",
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
    as_json: JsonOut = False,
) -> None:
    """What a session will cost at a station.

    Exactly what settlement charges for that energy and time at the station's current tariff (the
    tariff is fixed when the session opens; settlement never charges more than the deposit)."""
    energy_wh = decimal_arg(kwh, "--kwh", 1000)
    duration_s = decimal_arg(minutes, "--minutes", 60)
    wallet = open_wallet(config_from(rpc_url, deployment, None), need_account=False)
    result = wallet.quote(station, energy_wh, duration_s=duration_s)
    if as_json:
        emit(
            {
                **result.model_dump(mode="json"),
                "token": wallet.token_info.model_dump(),
                "total_amount": format_amount(result.total, wallet.token_info.decimals),
            }
        )
    else:
        typer.echo("\n".join(quote_lines(wallet, result)))


class InvoiceFormat(str, Enum):
    text = "text"
    json = "json"
    pdf = "pdf"


@app.command()
@clean_errors
def charge(
    station: StationArg,
    connector: Annotated[
        int, typer.Option("--connector", help="Connector number (from 1).", min=1, show_default=False)
    ],
    deposit: Annotated[
        str,
        typer.Option("--deposit", help="Most you will pay, in whole tokens; the rest is refunded.", show_default=False),
    ],
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Open the session and return at once.")] = False,
    exact_allowance: Annotated[
        bool,
        typer.Option(
            "--exact-allowance",
            help="Allow the escrow exactly this deposit, not a standing allowance: every session then pays "
            "for its own permit or approve (about 50,000 gas more).",
        ),
    ] = False,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between chain polls.", min=0.05)] = 1.0,
    live_url: LiveUrl = None,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
    account: AccountAddr = None,
) -> None:
    """Open a charging session and follow it live.

    The deposit goes into escrow (in one transaction with a permit when the token has one; the first
    permit leaves the escrow a standing allowance, so later sessions need none). Progress:
    requested > started > charging > stopping > settled; with the Core Client's live data (--live-url),
    energy, power, cost and deposit left as they rise, a line per meter reading. Ctrl-C while charging
    requests the stop and keeps watching until the session is settled; the invoice (from chain data) is
    printed at the end. Ctrl-C before the charge starts (or twice) leaves the session open."""
    cfg = config_from(rpc_url, deployment, account, live_url)
    wallet = open_wallet(cfg, unlock=True, poll=poll)
    wallet.standing_allowance = not exact_allowance
    opened = wallet.open(station, connector, amount_arg(wallet, deposit))
    sid, name = opened.session_id, wallet.name(opened.session_id)
    typer.echo(
        f"session {name} opened at station {opened.station_id} connector {connector}, deposit "
        f"{wallet.fmt(opened.deposit)} ({opened.method}; tx {opened.open_tx})"
    )
    typer.echo(f"session id {hex_session_id(sid)}")
    if no_wait:
        typer.echo(f"follow it with: ev-wallet status {name}")
        return
    live = LiveClient(cfg.live_url, wallet.account) if cfg.live_url else None
    final = LiveSession(wallet, sid, Console(soft_wrap=True, highlight=False), poll, live).run()
    if final is None:
        raise typer.Exit(130)
    if final.phase == "settled":
        typer.echo(render_text(wallet.invoice(sid)))
    else:
        typer.echo(f"session {name} {final.phase}: refunded {wallet.fmt(final.status.refund or 0)}")


@app.command()
@clean_errors
def stop(
    session: SessionArg, rpc_url: RpcUrl = None, deployment: DeploymentFile = None, account: AccountAddr = None
) -> None:
    """Ask the operator to stop a running session.

    The charge point stops the charge and the operator settles the session: cost paid, the rest refunded."""
    wallet = open_wallet(config_from(rpc_url, deployment, account), unlock=True)
    sid = session_arg(wallet, session)
    typer.echo(f"stop requested for session {wallet.name(sid)} (tx {wallet.request_stop(sid)})")


def _refund(config: WalletConfig, session: str, take_back: Callable[[Wallet, int], str], done: str) -> None:
    """The driver takes a session's whole deposit back (``take_back``: cancel or reclaim), in one line."""
    wallet = open_wallet(config, unlock=True)
    sid = session_arg(wallet, session)
    tx = take_back(wallet, sid)
    typer.echo(f"session {wallet.name(sid)} {done}, deposit refunded: balance {wallet.fmt(wallet.balance())} (tx {tx})")


@app.command()
@clean_errors
def cancel(
    session: SessionArg, rpc_url: RpcUrl = None, deployment: DeploymentFile = None, account: AccountAddr = None
) -> None:
    """Cancel a session that did not start in time (full refund).

    Possible once the start timeout has passed since the session was opened."""
    _refund(config_from(rpc_url, deployment, account), session, Wallet.cancel, "cancelled")


@app.command()
@clean_errors
def reclaim(
    session: SessionArg, rpc_url: RpcUrl = None, deployment: DeploymentFile = None, account: AccountAddr = None
) -> None:
    """Take back the deposit of a started session that was never settled.

    Possible once the maximum duration plus the grace period have passed since the start."""
    _refund(config_from(rpc_url, deployment, account), session, Wallet.reclaim, "reclaimed")


@app.command()
@clean_errors
def status(
    session: SessionArg,
    live_url: LiveUrl = None,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
    account: AccountAddr = None,
    as_json: SessionJsonOut = False,
) -> None:
    """Show a session's state, times, and cost once it has ended.

    Any driver's session by its full id; a label (7, 2/7) is one of the account's sessions. An old session
    shows how it ended (settled, cancelled, expired), read from its events. With a live URL, a running
    session of the account also shows the Core Client's live energy, power, cost and deposit left (the
    account is unlocked: it signs the request)."""
    cfg = config_from(rpc_url, deployment, account, live_url)
    wallet = open_wallet(cfg, need_account=False)
    st = wallet.session_status(session_arg(wallet, session))
    live, live_error = live_data(cfg, wallet, st)
    if as_json:
        emit(st.model_dump(mode="json") | ({"live": live, "live_error": live_error} if cfg.live_url else {}))
    else:
        typer.echo("\n".join(status_lines(wallet, st) + live_lines(wallet, live, live_error, st.reclaim_possible_at)))


@app.command()
@clean_errors
def history(
    live_url: LiveUrl = None,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
    account: AccountAddr = None,
    as_json: SessionJsonOut = False,
) -> None:
    """List the account's sessions and their final state.

    Rebuilt from chain events (SessionRequested by this driver, joined with what happened next). With a
    live URL, a running session the operator holds is HELD, with why (the account is unlocked: it signs
    the request)."""
    cfg = config_from(rpc_url, deployment, account, live_url)
    wallet = open_wallet(cfg)
    entries = wallet.history()
    held, live_error = {}, None
    if cfg.live_url and any(e.state == "active" for e in entries):
        held, live_error = held_notes(wallet, live_client(cfg, wallet), entries)
    if as_json:
        sessions = [e.model_dump(mode="json") | {"held": held.get(e.session_id)} for e in entries]
        emit({"address": wallet.address, "token": wallet.token_info.model_dump(), "sessions": sessions})
    elif not entries:
        typer.echo(f"no sessions for {wallet.address}")
    else:
        Console().print(history_table(wallet, entries, held))
        for line in held_lines(entries, held, live_error):
            typer.echo(line)


@app.command()
@clean_errors
def invoice(
    session: SessionArg,
    fmt: Annotated[InvoiceFormat, typer.Option("--format", help="text, json or pdf.")] = InvoiceFormat.text,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE (pdf default: <number>.pdf).")
    ] = None,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
    account: AccountAddr = None,
    as_json: SessionJsonOut = False,
) -> None:
    """The invoice of a settled session, from chain data only.

    --json is the same as --format json (the session id in full, 0x + 64 hex digits); pdf is written to
    --output (default <invoice number>.pdf). The invoice number is
    EVN-<chain>-<escrow>-<driver>-<label>, e.g. EVN-31337-5FBDB2-70997970-7 (label 2/7: ...-2-7)."""
    wallet = open_wallet(config_from(rpc_url, deployment, account), need_account=False)
    inv = wallet.invoice(session_arg(wallet, session))
    fmt = InvoiceFormat.json if as_json else fmt
    if fmt is InvoiceFormat.pdf:
        path = render_pdf(inv, output or Path(f"{inv.number}.pdf"))
        typer.echo(f"invoice {inv.number} written to {path}")
        return
    text = render_json(inv) if fmt is InvoiceFormat.json else render_text(inv)
    if output is not None:
        save_invoice(output, text if text.endswith("\n") else text + "\n")
        typer.echo(f"invoice {inv.number} written to {output}", err=True)
    else:
        typer.echo(text.rstrip("\n"))


@app.command()
@clean_errors
def web(
    host: Annotated[
        str, typer.Option("--host", help="Address to serve on (keep it local: the page unlocks the key).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8600,
    live_url: LiveUrl = None,
    idle_lock: Annotated[int, typer.Option("--idle-lock", help="Lock the account after this many idle minutes.")] = 5,
    rpc_url: RpcUrl = None,
    deployment: DeploymentFile = None,
) -> None:
    """The wallet in a browser: account, stations, quotes, charging live, history, invoices and cards.

    Open http://HOST:PORT/ and unlock the account with its password; the key stays in this process."""
    import uvicorn

    from wallet.web import create_app

    cfg = config_from(rpc_url, deployment, None, live_url)
    web_app = create_app(cfg, cfg.live_url, idle_lock * 60)
    typer.echo(f"EV Wallet on http://{host}:{port}/ (Ctrl-C stops)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(
            f"warning: {host} is reachable from other machines: anyone there can use an unlocked account", err=True
        )
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    app()
