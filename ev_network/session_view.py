"""One fold of a session's escrow events into what happened to it: :func:`fold` -> :class:`SessionView`.

The events are the record (storage keeps only a lane's latest session), so the wallet's status,
history and invoice, and anyone else who needs a session's story, read it here. Pure domain logic:
events in, a view out; ``block_time`` (block number -> timestamp) is the only outside help, for the
events that carry no time of their own (SessionRequested, SessionCancelled, SessionExpired, SessionRefunded)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from ev_network.contracts import CancelReason, SessionState
from ev_network.errors import EVNetworkError
from ev_network.events import ChainEvent

BlockTime = Callable[[int], int]
#: every event :func:`fold` reads, in the order a session emits them
SESSION_EVENTS = [
    "SessionRequested",
    "SessionStarted",
    "StopRequested",
    "SessionSettled",
    "SessionCancelled",
    "SessionExpired",
    "SessionRefunded",
]


class SessionEventsIncomplete(EVNetworkError):
    """The events hold no SessionRequested: the session's story cannot be told from them."""


@dataclass(frozen=True)
class SessionView:
    """A session as its events tell it. ``state`` is REQUESTED, ACTIVE, SETTLED, CANCELLED or EXPIRED;
    times are unix seconds (None when not known: not yet happened, or no ``block_time`` given)."""

    session_id: int
    driver: str
    station_id: int
    connector: int
    deposit: int
    tariff_id: int
    state: SessionState
    opened_block: int
    open_tx: str
    opened_at: int | None = None
    transaction_id: int | None = None
    meter_start: int | None = None
    started_at: int | None = None
    start_tx: str | None = None
    stop_requested: bool = False
    ended_at: int | None = None
    end_tx: str | None = None
    meter_stop: int | None = None
    energy_wh: int | None = None
    cost: int | None = None
    refund: int | None = None
    cancel_reason: CancelReason | None = None
    operator: str | None = None
    payout: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in (SessionState.SETTLED, SessionState.CANCELLED, SessionState.EXPIRED)

    @property
    def duration_s(self) -> int | None:
        """Seconds from start to end (None unless both are known)."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


Step = Callable[[SessionView, ChainEvent, BlockTime | None], SessionView]
_STEPS: dict[str, Step] = {}


def _on(name: str) -> Callable[[Step], Step]:
    """Register how event ``name`` changes a view (one handler per event)."""

    def register(step: Step) -> Step:
        _STEPS[name] = step
        return step

    return register


def fold(events: Iterable[ChainEvent], block_time: BlockTime | None = None) -> SessionView:
    """The view of one session from its events (any order: they are sorted by chain position).
    SessionEventsIncomplete if its SessionRequested is not among them."""
    ordered = sorted(events, key=lambda e: e.position)
    requested = next((e for e in ordered if e.name == "SessionRequested"), None)
    if requested is None:
        raise SessionEventsIncomplete("the session's SessionRequested event is not among its events")
    a = requested.args
    view = SessionView(
        session_id=a["sessionId"],
        driver=a["driver"],
        station_id=a["stationId"],
        connector=a["connector"],
        deposit=a["deposit"],
        tariff_id=a["tariffId"],
        state=SessionState.REQUESTED,
        opened_block=requested.block_number,
        open_tx=requested.tx_hash,
        opened_at=block_time(requested.block_number) if block_time else None,
    )
    for event in ordered:
        step = _STEPS.get(event.name)
        if step is not None and event.args.get("sessionId") == view.session_id:
            view = step(view, event, block_time)
    return view


@_on("SessionStarted")
def _started(view: SessionView, event: ChainEvent, _: BlockTime | None) -> SessionView:
    a = event.args
    state = SessionState.ACTIVE if view.state is SessionState.REQUESTED else view.state
    return replace(view, state=state, transaction_id=a["transactionId"], meter_start=a["meterStart"],
                   started_at=a["startedAt"], start_tx=event.tx_hash)  # fmt: skip


@_on("StopRequested")
def _stop_requested(view: SessionView, event: ChainEvent, _: BlockTime | None) -> SessionView:
    return replace(view, stop_requested=True)


@_on("SessionSettled")
def _settled(view: SessionView, event: ChainEvent, _: BlockTime | None) -> SessionView:
    a = event.args
    return replace(view, state=SessionState.SETTLED, meter_start=a["meterStart"], meter_stop=a["meterStop"],
                   energy_wh=a["meterStop"] - a["meterStart"], started_at=a["startedAt"], ended_at=a["endedAt"],
                   end_tx=event.tx_hash, cost=a["cost"], refund=a["refund"], operator=a["operator"],
                   payout=a["payout"])  # fmt: skip


def _refunded(view: SessionView, event: ChainEvent, block_time: BlockTime | None, state: SessionState) -> SessionView:
    ended_at = block_time(event.block_number) if block_time else None
    return replace(view, state=state, ended_at=ended_at, end_tx=event.tx_hash, cost=0, refund=event.args["refund"])


@_on("SessionCancelled")
def _cancelled(view: SessionView, event: ChainEvent, block_time: BlockTime | None) -> SessionView:
    view = _refunded(view, event, block_time, SessionState.CANCELLED)
    return replace(view, cancel_reason=CancelReason(event.args["reason"]))


@_on("SessionExpired")
def _expired(view: SessionView, event: ChainEvent, block_time: BlockTime | None) -> SessionView:
    return _refunded(view, event, block_time, SessionState.EXPIRED)


@_on("SessionRefunded")
def _operator_refunded(view: SessionView, event: ChainEvent, block_time: BlockTime | None) -> SessionView:
    view = _refunded(view, event, block_time, SessionState.CANCELLED)
    return replace(view, operator=event.args["operator"])
