"""Terminal output of the CLI: rich tables, and the live view of a charging session (with the Core
Client's live data when it publishes it: energy, power, cost and deposit left)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from ev_network.session_ids import hex_session_id
from ev_network.units import short_amount
from wallet.core import Wallet
from wallet.live_client import LiveClient, LiveUnavailable
from wallet.models import HistoryEntry, Progress, Quote, SessionStatus, StationView
from wallet.units import format_amount, format_duration, format_time, format_wh_as_kwh

LIVE_RETRY_S = 30  # after the live data failed, the chain's view alone for this long
STEPS = ["requested", "started", "charging", "stopping", "settled"]
LABELS = {
    "requested": "requested: deposit in escrow, waiting for the operator to start the charge",
    "started": "started: the charge point began the transaction",
    "charging": "charging",
    "stopping": "stopping: stop requested, waiting for the operator to settle",
    "settled": "settled: cost paid to the operator, the rest refunded",
    "cancelled": "cancelled: the whole deposit was refunded",
    "expired": "expired: the deposit was reclaimed",
}


def stations_table(wallet: Wallet, stations: list[StationView]) -> Table:
    d, sym = wallet.token_info.decimals, wallet.token_info.symbol
    table = Table(title=f"Stations (prices in {sym})")
    for column in ("id", "charge point", "operator", "conn", "active", "per kWh", "fee", "per hour"):
        table.add_column(column, justify="right" if column in ("id", "conn") else "left", no_wrap=column != "operator")
    for s in stations:
        t = s.tariff
        table.add_row(
            str(s.station_id),
            s.charge_point_id,
            s.operator_name,
            str(s.connectors),
            "yes" if s.active else "no",
            format_amount(t.price_per_kwh, d),
            format_amount(t.session_fee, d),
            format_amount(t.time_fee_per_hour, d) if t.time_fee_per_hour else "-",
        )
    return table


def quote_lines(wallet: Wallet, quote: Quote) -> list[str]:
    rows = [("session fee", quote.session_fee), (f"energy {format_wh_as_kwh(quote.energy_wh)} kWh", quote.energy_cost)]
    if quote.time_cost or quote.duration_s:
        rows.append((f"time {format_duration(quote.billed_duration_s)}", quote.time_cost))
    rows.append(("total", quote.total))
    lines = [f"Quote at station {quote.station_id} ({quote.charge_point_id}), tariff #{quote.tariff_id}"]
    lines += [f"  {label:<22} {wallet.fmt(amount):>16}" for label, amount in rows]
    lines.append(f"  note: {quote.cap_note}")
    return lines


def status_lines(wallet: Wallet, st: SessionStatus) -> list[str]:
    lines = [
        f"Session {wallet.name(st.session_id)}: {st.phase or st.state}",
        f"  id      {hex_session_id(st.session_id)}",
        f"  station {st.station_id}, connector {st.connector}, driver {st.driver}",
        f"  deposit {wallet.fmt(st.deposit)}, tariff #{st.tariff_id}",
        f"  opened  {format_time(st.opened_at)}",
    ]
    if st.state == "requested":
        lines.append(f"  can be cancelled from {format_time(st.cancel_possible_at)} if it does not start")
    if st.started_at:
        ocpp = f" (OCPP transaction {st.transaction_id})" if st.transaction_id is not None else ""
        lines.append(f"  started {format_time(st.started_at)}{ocpp}")
    if st.state == "active" and st.reclaim_possible_at:
        lines.append(f"  can be reclaimed from {format_time(st.reclaim_possible_at)} if never settled")
    if st.stop_requested and st.state == "active":
        lines.append("  stop requested")
    if st.ended_at:
        lines.append(f"  ended   {format_time(st.ended_at)}")
    if st.energy_wh is not None:
        lines.append(f"  energy  {format_wh_as_kwh(st.energy_wh)} kWh")
    if st.cost is not None:
        lines.append(f"  cost    {wallet.fmt(st.cost)}, refund {wallet.fmt(st.refund or 0)}")
    if st.cancel_reason:
        lines.append(f"  reason  {st.cancel_reason}")
    return lines


def live_figures(wallet: Wallet, data: dict[str, Any]) -> str:
    """The Core Client's live data in one line: ``1.234 kWh, 11.0 kW, cost 1.2345 EVE, deposit left 8.76 EVE``."""
    d, sym = wallet.token_info.decimals, wallet.token_info.symbol
    return (
        f"{format_wh_as_kwh(data['energy_wh'])} kWh, {data['power_w'] / 1000:.1f} kW, "
        f"cost {short_amount(data['cost'], d)} {sym}, deposit left {short_amount(data['deposit_left'], d)} {sym}"
    )


def held_note(data: dict[str, Any] | None, reclaim_at: int | None) -> str | None:
    """Why a session is held, from the Core Client's live data (its ``held``), and when the deposit comes back
    at the latest (``reclaim_at``: when the driver can reclaim it on chain); None if it is not held. The
    driver reads it in ``ev-wallet status`` and on the web app's session page."""
    if not data or not data.get("held"):
        return None
    back = f"; the deposit comes back at the latest from {format_time(reclaim_at)} (reclaim)" if reclaim_at else ""
    return f"the charge has stopped, nothing is settled until the operator decides: {data['held']}{back}"


def held_notes(wallet: Wallet, live: LiveClient, entries: list[HistoryEntry]) -> tuple[dict[int, str], str | None]:
    """Why each running session of ``entries`` is held (:func:`held_note`), by session id, from the Core
    Client's live data; and why that could not be read (the chain's states alone then), or None."""
    notes: dict[int, str] = {}
    for entry in entries:
        if entry.state != "active":
            continue
        try:
            data = live.session(entry.session_id)
        except LiveUnavailable as exc:
            return notes, str(exc)
        note = held_note(data, wallet.tracker.reclaim_possible_at(entry.started_at))
        if note:
            notes[entry.session_id] = note
    return notes, None


def live_lines(
    wallet: Wallet, data: dict[str, Any] | None, error: str | None, reclaim_at: int | None = None
) -> list[str]:
    """What ``status`` adds for a running session when a live URL is given (a held session: why, and when
    the deposit comes back at the latest: ``reclaim_at``, when the driver can reclaim it on chain)."""
    if data is not None:
        meter = format_time(int(data["last_meter_at"])) if data["last_meter_at"] else "none yet"
        status = data["connector_status"]
        lines = [f"  live    {live_figures(wallet, data)} (last meter reading {meter}, connector {status})"]
        held = held_note(data, reclaim_at)
        return [*lines, f"  HELD    {held}"] if held else lines
    return [f"  live    none: {error} (the chain's view above)"] if error else []


def history_table(wallet: Wallet, entries: list[HistoryEntry], held: dict[int, str] | None = None) -> Table:
    """The account's sessions; those in ``held`` (:func:`held_notes`) are HELD (:func:`held_lines`: why)."""
    d, held = wallet.token_info.decimals, held or {}
    table = Table(title=f"Sessions of {wallet.address} (amounts in {wallet.token_info.symbol})")
    for column in ("session", "station", "conn", "state", "deposit", "kWh", "cost", "refund", "ended"):
        table.add_column(column, justify="left" if column in ("state", "ended") else "right")
    for e in entries:
        table.add_row(
            e.label,
            str(e.station_id),
            str(e.connector),
            "HELD" if e.session_id in held else e.state,
            format_amount(e.deposit, d),
            format_wh_as_kwh(e.energy_wh) if e.energy_wh is not None else "-",
            format_amount(e.cost, d) if e.cost is not None else "-",
            format_amount(e.refund, d) if e.refund is not None else "-",
            format_time(e.ended_at) if e.ended_at else "-",
        )
    return table


def held_lines(entries: list[HistoryEntry], held: dict[int, str], live_error: str | None = None) -> list[str]:
    """What ``history`` says under its table: why each held session is held and when its deposit comes
    back; or why the live data could not be read."""
    lines = [f"HELD {e.label}: {held[e.session_id]}" for e in entries if e.session_id in held]
    return lines + ([f"live data: none: {live_error} (states from the chain)"] if live_error else [])


def progress_text(wallet: Wallet, update: Progress) -> str:
    """One line for the live display, e.g. ``requested > started > [charging 0:01:12] > stopping > settled``."""
    phase = update.phase
    steps = STEPS if phase in STEPS else [*STEPS[:-1], phase]
    current = steps.index(phase) if phase in steps else 0
    shown = []
    for i, step in enumerate(steps):
        label = step
        if step == phase and phase in ("charging", "stopping") and update.elapsed_s is not None:
            label = f"{step} {format_duration(update.elapsed_s)}"
        shown.append(f"[bold]{label}[/bold]" if i == current else (label if i < current else f"[dim]{label}[/dim]"))
    return " > ".join(shown)


class LiveSession:
    """Follows a session on the terminal until it ends. Ctrl-C while charging requests the stop and keeps
    watching; Ctrl-C before the start (or a second one) leaves the session running and returns None."""

    def __init__(
        self,
        wallet: Wallet,
        session_id: int,
        console: Console,
        poll_interval: float = 1.0,
        live: LiveClient | None = None,
    ) -> None:
        self.wallet = wallet
        self.live = live
        self.session_id = session_id
        self.name = wallet.name(session_id)
        self.console = console
        self.poll_interval = poll_interval
        self.shown: set[str] = set()
        self.stop_sent = False
        self.interrupts = 0
        self.figures = ""  # the latest live figures
        self._last_meter: float | None = None
        self._live_from = 0.0  # monotonic time from which to read live data (again)
        self._live_failed = False

    def run(self) -> Progress | None:
        with self.console.status(f"session {self.name}: connecting...") as status:
            while True:
                try:
                    for update in self.wallet.watch(self.session_id, self.poll_interval):
                        self._show(update, status)
                        if update.done:
                            return update
                except KeyboardInterrupt:
                    if not self._interrupted():
                        return None

    def _show(self, update: Progress, status: object) -> None:
        if update.phase not in self.shown:
            self.shown.add(update.phase)
            self.console.print(f"session {self.name}: {LABELS[update.phase]}", highlight=False)
        figures = self._live(update)
        line = progress_text(self.wallet, update) + (f" | {figures}" if figures else "")
        status.update(f"session {self.name}: {line}")  # type: ignore[attr-defined]

    def _live(self, update: Progress) -> str:
        """The live figures while the session charges ('' without them), and a line for each new meter
        reading. When the live data fails: one line saying so, the chain's view alone for a while."""
        if self.live is None or update.phase not in ("charging", "stopping") or time.monotonic() < self._live_from:
            return self.figures if update.phase in ("charging", "stopping") else ""
        try:
            data = self.live.session(self.session_id)
        except LiveUnavailable as error:
            self._live_from, self.figures = time.monotonic() + LIVE_RETRY_S, ""
            if not self._live_failed:
                self._live_failed = True
                self._say(f"session {self.name}: no live data ({error}); following the chain")
            return ""
        self._live_failed = False
        self.figures = live_figures(self.wallet, data)
        if data["last_meter_at"] is not None and data["last_meter_at"] != self._last_meter:
            self._last_meter = data["last_meter_at"]
            self._say(f"session {self.name}: {self.figures}")
        return self.figures

    def _say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def _interrupted(self) -> bool:
        """Handle Ctrl-C; True to keep watching."""
        self.interrupts += 1
        st = self.wallet.session_status(self.session_id)
        if st.state == "active" and not self.stop_sent:
            self.console.print(f"session {self.name}: Ctrl-C, requesting the stop...")
            self.wallet.request_stop(self.session_id)
            self.stop_sent = True
            return True
        if st.state == "requested" and self.interrupts == 1:
            self.console.print(
                f"session {self.name} has not started, so it cannot be stopped; it can be cancelled from "
                f"{format_time(st.cancel_possible_at)} (ev-wallet cancel {self.name}). Ctrl-C again to leave."
            )
            return True
        if st.phase in ("settled", "cancelled", "expired"):
            return True  # the next watch shows the end
        self.console.print(f"left session {self.name} ({st.phase}); follow it with: ev-wallet status {self.name}")
        return False
