"""What the wallet library returns. Amounts are integers in the token's smallest unit; the CLI
formats them with the token's decimals. ``model_dump(mode="json")`` is the CLI's ``--json`` output.

Session ids are ints in Python and the canonical ``0x`` + 64 hex digits in JSON (:data:`SessionId`);
every model with a session also carries its short ``label`` (``7``, or ``2/7`` on lane 2)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, PlainSerializer, computed_field

from ev_network.pricing import Tariff
from ev_network.session_ids import driver_of, hex_session_id, is_session_id, session_label


def _session_id_in(value: Any) -> Any:
    """Accept the JSON form back (``0x`` hex text) as well as an int."""
    return int(value, 16) if isinstance(value, str) and value.lower().startswith("0x") else value


SessionId = Annotated[
    int, BeforeValidator(_session_id_in), PlainSerializer(hex_session_id, return_type=str, when_used="json")
]
"""A session id: an int in Python, ``0x`` + 64 hex digits in JSON."""


class SessionModel(BaseModel):
    """A model about one session: its full id and, derived from it, the label people see."""

    session_id: SessionId

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        """The short label: ``seq`` on lane 0, ``lane/seq`` otherwise."""
        return session_label(self.session_id)


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

    @property
    def record(self) -> Tariff:
        """The tariff as ev_network.pricing prices it."""
        return Tariff(self.price_per_kwh, self.session_fee, self.time_fee_per_hour)


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


class OpenResult(SessionModel):
    """A session the wallet opened, and how (``permit``, ``approve`` then open, or ``allowance`` already there)."""

    station_id: int
    connector: int
    deposit: int
    method: Literal["permit", "approve", "allowance"]
    open_tx: str
    approve_tx: str | None = None


class SessionStatus(SessionModel):
    """A session's state and times, from contract storage and the session's events. ``state`` is
    requested, active, settled, cancelled or expired; a session whose lane moved on (Closed on chain)
    shows how it ended, from its events (``closed`` only if those events cannot be found)."""

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
    transaction_id: int | None = None
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


class Progress(SessionModel):
    """One update of :meth:`wallet.core.Wallet.watch`."""

    phase: Phase
    elapsed_s: int | None = None
    status: SessionStatus

    @property
    def done(self) -> bool:
        return self.phase in TERMINAL_PHASES


class HistoryEntry(SessionModel):
    """One of the account's sessions, rebuilt from chain events alone."""

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


def session_name(session_id: int, own: str | None = None) -> str:
    """How a message names a session: its label, unless it is not a session of ``own`` (the wallet's
    account, when given): then the full id, since a label only means something with its driver."""
    if own is not None and (not is_session_id(session_id) or driver_of(session_id).lower() != own.lower()):
        return hex_session_id(session_id)
    return session_label(session_id)
