"""What the CPO dashboard reads (:class:`DashboardSource`) and its implementation on the running
daemon's session service plus a chain connection (:class:`ServiceDashboardSource`): sessions in flight
with their latest readings (in memory, ahead of the store), the store's job queue and history, the
held sessions with their evidence (the daemon's :class:`HeldDesk`, as ``core-client sessions held``),
and, with several instances on one PostgreSQL, every instance with the charge points it holds
(:mod:`core_client.web.instances`). All of it but the readings in memory comes from the store: with
several instances, the dashboard of any of them shows the operator's whole picture."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any, Protocol

from pydantic import BaseModel
from web3 import Web3

from core_client.sessions import held
from core_client.sessions.held_desk import HeldDesk
from core_client.sessions.machine import RUNNING, SessionRecord, State
from core_client.sessions.service import SessionService
from core_client.web.instances import Directory, Instances, instances_view
from core_client.web.live import ReadingsSource, StationLive
from ev_network.contracts import CancelReason, Token
from ev_network.deployment import Deployment
from ev_network.session_ids import hex_session_id

IN_FLIGHT = frozenset({State.REQUESTED, State.REMOTE_START_SENT, *RUNNING, State.STOPPED})
PROBLEMS_SHOWN = 50
RECENT_SHOWN = 10


class SessionRow(BaseModel):
    session_id: str
    id_tag: str
    charge_point_id: str
    connector: int
    state: str
    energy_wh: int
    deposit: int
    cost: int | None
    reason: str | None  # failed or rejected: why
    at: float | None


class JobRow(BaseModel):
    id: int
    kind: str
    session_id: str
    status: str
    attempts: int
    tx_hash: str | None
    error: str | None


class ChainInfo(BaseModel):
    reachable: bool
    head: int | None
    gas_balance_wei: int | None
    operator: str
    symbol: str
    decimals: int


class Revenue(BaseModel):
    today: int
    month: int
    sessions_today: int
    sessions_month: int


class DashboardSource(Protocol):
    """What the dashboard reads, and what it may change: retrying a failed chain job, deciding a held session."""

    async def panels(self, now: float) -> dict[str, Any]:
        """What the page shows but the chain: ``stations``, ``sessions`` (in flight), ``jobs``, ``problems``,
        ``settled``, ``held``, ``revenue`` and ``instances`` (see :class:`ServiceDashboardSource`)."""
        ...

    async def chain(self) -> ChainInfo: ...

    async def retry_job(self, job_id: int) -> str: ...

    async def decide_held(self, session_id: int, settle: bool) -> str: ...


class ServiceDashboardSource:
    """:class:`DashboardSource` on the daemon's :class:`SessionService` (from its event loop) and the chain;
    held sessions through the daemon's ``desk`` (the one ``core-client sessions settle-held`` goes through);
    the instances from ``directory`` (the daemon's claims; None: one instance alone)."""

    def __init__(
        self,
        service: SessionService,
        w3: Web3,
        deployment: Deployment,
        operator: str,
        desk: HeldDesk | None = None,
        directory: Directory | None = None,
    ) -> None:
        self.service, self.store, self.directory = service, service.store, directory
        self.desk = desk if desk is not None else HeldDesk(service)
        self.w3, self.deployment, self.operator = w3, deployment, operator
        self._readings = ReadingsSource(service.live)
        self._token: tuple[str, int] | None = None

    async def panels(self, now: float) -> dict[str, Any]:
        """Read on the store's thread, where the session service's state lives: the event loop serving the
        charge points never waits for the database."""
        return await self.service.handle(self._panels, now)

    def _panels(self, now: float) -> dict[str, Any]:
        return {
            "stations": self.stations(),
            "sessions": self.sessions_in_flight(),
            "jobs": self.jobs(),
            "problems": self.problems(),
            "settled": self.settled(),
            "held": self.held(),
            "revenue": self.revenue(now),
            "instances": self.instances(now),
        }

    def stations(self) -> list[StationLive]:
        return self._readings.stations_now()

    def sessions_in_flight(self) -> list[SessionRow]:
        return [self._row(self.service.live.current(s)) for s in self.store.sessions_in(IN_FLIGHT)]

    def jobs(self) -> list[JobRow]:
        return [
            JobRow(
                id=j.id,
                kind=j.kind,
                session_id=hex_session_id(j.session_id),
                status=j.status,
                attempts=j.attempts,
                tx_hash=j.tx_hash,
                error=j.last_error,
            )
            for j in self.store.jobs("pending", "sent", "failed")
        ]

    def problems(self) -> list[SessionRow]:
        found = self.store.sessions_in({State.FAILED, State.HELD, State.REJECTED, State.REJECTING})
        return [self._row(s) for s in found[-PROBLEMS_SHOWN:]][::-1]

    def settled(self) -> list[SessionRow]:
        return [self._row(s) for s in self.store.sessions_in({State.SETTLED})[-RECENT_SHOWN:]][::-1]

    def revenue(self, now: float) -> Revenue:
        day = datetime.fromtimestamp(now, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        day_start, month_start = day.timestamp(), day.replace(day=1).timestamp()
        settled = [s for s in self.store.sessions_in({State.SETTLED}) if (s.finished_at or 0) >= month_start]
        today = [s for s in settled if (s.finished_at or 0) >= day_start]
        return Revenue(
            today=sum(s.cost or 0 for s in today),
            month=sum(s.cost or 0 for s in settled),
            sessions_today=len(today),
            sessions_month=len(settled),
        )

    async def chain(self) -> ChainInfo:
        def read() -> tuple[int | None, int | None]:
            try:
                if self._token is None:
                    token = Token(self.w3, self.deployment.token)
                    self._token = (token.symbol(), token.decimals())
                return self.w3.eth.block_number, self.w3.eth.get_balance(self.operator)
            except Exception:  # the chain is down: the dashboard says so
                return None, None

        head, gas = await asyncio.to_thread(read)
        symbol, decimals = self._token or ("", 18)
        return ChainInfo(
            reachable=head is not None,
            head=head,
            gas_balance_wei=gas,
            operator=self.operator,
            symbol=symbol,
            decimals=decimals,
        )

    async def retry_job(self, job_id: int) -> str:
        return await self.service.handle(self.service.retry_job, job_id)

    def held(self) -> list[dict[str, Any]]:
        return self.desk.sessions()

    def instances(self, now: float) -> Instances | None:
        return instances_view(self.directory, now)

    async def decide_held(self, session_id: int, settle: bool) -> str:
        """The desk's answer in one line; :class:`held.Refused` (why) where the rules do not allow it."""
        return held.decision_line(await self.service.handle(self.desk.decide, session_id, settle))

    def _row(self, s: SessionRecord) -> SessionRow:
        reason = s.last_error
        if s.state in (State.REJECTED, State.REJECTING) and s.reject_reason is not None:
            reason = f"rejected: {CancelReason(s.reject_reason).name.lower().replace('_', ' ')}"
        return SessionRow(
            session_id=hex_session_id(s.session_id),
            id_tag=self.service.charge_point_tag(s),
            charge_point_id=s.charge_point_id,
            connector=s.connector,
            state=s.state.value,
            energy_wh=s.energy_wh,
            deposit=s.deposit,
            cost=s.cost,
            reason=reason,
            at=s.finished_at or s.meter_at or s.started_at or s.requested_at or time.time(),
        )
