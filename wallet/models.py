"""What the wallet library returns. Amounts are integers in the token's smallest unit; the CLI
formats them with the token's decimals. ``model_dump(mode="json")`` is the CLI's ``--json`` output."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Phase = Literal["requested", "started", "charging", "stopping", "settled", "cancelled", "expired"]
TERMINAL_PHASES: frozenset[str] = frozenset({"settled", "cancelled", "expired"})


class TokenInfo(BaseModel):
    address: str
    symbol: str
    decimals: int


class TariffView(BaseModel):
    """A tariff record (amounts per kWh, per session, per hour)."""

    tariff_id: int
    price_per_kwh: int
    session_fee: int
    time_fee_per_hour: int


class StationView(BaseModel):
    """A station as a driver sees it: who runs it, what it costs, whether it takes sessions now."""

    station_id: int
    charge_point_id: str
    operator: str
    operator_name: str
    payout: str
    connectors: int
    active: bool
    tariff: TariffView


class Quote(BaseModel):
    """What a session at ``station_id`` will cost for ``energy_wh`` over ``duration_s`` under the
    station's current tariff: ``total`` is exactly what settlement charges, as long as the deposit
    covers it. Settlement never charges more than the deposit (``cap_note``)."""

    station_id: int
    charge_point_id: str
    tariff_id: int
    energy_wh: int
    duration_s: int
    billed_duration_s: int
    session_fee: int
    energy_cost: int
    time_cost: int
    total: int
    cap_note: str = "settlement charges at most the deposit: open with a deposit of at least the total"


class OpenResult(BaseModel):
    """A session the wallet opened, and how (``permit``, ``approve`` then open, or ``allowance`` already there)."""

    session_id: int
    station_id: int
    connector: int
    deposit: int
    method: Literal["permit", "approve", "allowance"]
    open_tx: str
    approve_tx: str | None = None


class SessionStatus(BaseModel):
    """A session's state and times, from contract storage and the session's events."""

    session_id: int
    state: str
    phase: Phase | None
    driver: str
    station_id: int
    connector: int
    deposit: int
    tariff_id: int
    opened_at: int
    cancel_possible_at: int
    started_at: int | None = None
    reclaim_possible_at: int | None = None
    stop_requested: bool = False
    ended_at: int | None = None
    meter_start: int | None = None
    meter_stop: int | None = None
    energy_wh: int | None = None
    cost: int | None = None
    refund: int | None = None
    cancel_reason: str | None = None
    open_tx: str | None = None
    start_tx: str | None = None
    end_tx: str | None = None


class Progress(BaseModel):
    """One update of :meth:`wallet.core.Wallet.watch`."""

    session_id: int
    phase: Phase
    elapsed_s: int | None = None
    status: SessionStatus

    @property
    def done(self) -> bool:
        return self.phase in TERMINAL_PHASES


class HistoryEntry(BaseModel):
    """One of the account's sessions, rebuilt from chain events alone."""

    session_id: int
    station_id: int
    connector: int
    deposit: int
    tariff_id: int
    state: str
    opened_block: int
    open_tx: str
    started_at: int | None = None
    ended_at: int | None = None
    energy_wh: int | None = None
    cost: int | None = None
    refund: int | None = None
    cancel_reason: str | None = None
