"""The bare-``ocpp`` central system of the load benchmark, in its own process, with a session driver.

    python -m benchmarks.load.bare PORT

Serves :mod:`benchmarks.bare_central` (no chain, answers every CALL at once) on 127.0.0.1:PORT and
prints ``LISTENING <port>``. Commands on stdin, one per line:

- ``GO {"cp_ids": [...], "sessions": K, "open_rate": R, "connector": 1}``: the baseline of the
  Core Client's app-started sessions. RemoteStartTransaction goes to the charge points at R per
  second (the same ramp as the drivers' ``open`` transactions against the daemon); when a charge
  point is Available again after its StopTransaction, it gets the next RemoteStart, K sessions in
  all. ``ALLDONE`` is printed when every session has stopped.
- ``REPORT``: prints ``SESSIONS {json}`` (RemoteStart send times, rejections, sessions stopped).
- ``QUIT``: close and exit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import websockets
from ocpp.routing import after
from ocpp.v16.enums import Action
from websockets.exceptions import ConnectionClosed

from benchmarks.bare_central import BareCentral, BareChargePoint

log = logging.getLogger("benchmarks.load.bare")


class DrivenChargePoint(BareChargePoint):
    """A bare central-system link that tells the session driver about stops and free connectors."""

    central: DrivenCentral

    @after(Action.stop_transaction)
    def after_stop(self, **_: Any) -> None:
        self.central.on_stop(self.id)

    @after(Action.status_notification)
    def after_status(self, connector_id: int, status: str, **_: Any) -> None:
        if status == "Available":
            self.central.on_available(self.id, connector_id)


@dataclass
class DrivenCentral(BareCentral):
    """BareCentral plus the session driver of the load benchmark."""

    charge_point_class: ClassVar[type[BareChargePoint]] = DrivenChargePoint
    connector: int = 1
    remaining: dict[str, int] = field(default_factory=dict)
    waiting: set[str] = field(default_factory=set)  # stopped, next RemoteStart once Available
    opens: list[list[Any]] = field(default_factory=list)
    rejected: int = 0
    stopped: int = 0
    total: int = 0
    all_done: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task] = field(default_factory=set)

    async def go(self, cp_ids: list[str], sessions: int, open_rate: float, connector: int) -> None:
        """Start ``sessions`` sessions on each charge point, the first ones ramped at ``open_rate`` per second."""
        self.connector, self.total = connector, len(cp_ids) * sessions
        self.remaining = {cp_id: sessions for cp_id in cp_ids}
        started = time.monotonic()
        for i, cp_id in enumerate(cp_ids):
            delay = started + i / open_rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._spawn(self._open(cp_id))

    async def _open(self, cp_id: str) -> None:
        self.remaining[cp_id] -= 1
        self.opens.append([cp_id, time.time()])
        try:
            status = await self.remote_start(cp_id, self.connector, f"BENCH{len(self.opens)}")
        except (KeyError, ConnectionClosed, asyncio.TimeoutError):
            status = None
        if status != "Accepted":
            self.rejected += 1
            self._check_done()
            if self.remaining.get(cp_id, 0) > 0:  # no Available will come: retry a little later
                await asyncio.sleep(0.5)
                self._spawn(self._open(cp_id))

    def on_stop(self, cp_id: str) -> None:
        self.stopped += 1
        if self.remaining.get(cp_id, 0) > 0:
            self.waiting.add(cp_id)
        self._check_done()

    def _check_done(self) -> None:
        if self.stopped + self.rejected >= self.total:
            self.all_done.set()

    def on_available(self, cp_id: str, connector: int) -> None:
        if connector == self.connector and cp_id in self.waiting:
            self.waiting.discard(cp_id)
            self._spawn(self._open(cp_id))

    def report(self) -> dict[str, Any]:
        return {"opens": self.opens, "rejected": self.rejected, "stopped": self.stopped, "total": self.total}

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def main(port: int) -> None:
    central = DrivenCentral(record=False)
    central.server = await websockets.serve(
        central._handle, "127.0.0.1", port, subprotocols=["ocpp1.6"], process_request=central._check_credentials
    )
    print(f"LISTENING {central.port}", flush=True)

    async def announce_done() -> None:
        await central.all_done.wait()
        print("ALLDONE", flush=True)

    waiter = asyncio.get_running_loop().create_task(announce_done())
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        command, _, argument = line.strip().partition(" ")
        if command == "GO":
            args = json.loads(argument)
            central._spawn(central.go(args["cp_ids"], args["sessions"], args["open_rate"], args.get("connector", 1)))
        elif command == "REPORT":
            print("SESSIONS " + json.dumps(central.report()), flush=True)
        elif command == "QUIT" or not line:
            break
    waiter.cancel()
    await central.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("ocpp").setLevel(logging.ERROR)
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
