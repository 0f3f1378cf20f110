"""The many-open-event-streams shape of the chaos benchmark (:mod:`benchmarks.chaos`): ``count`` drivers'
apps keep live event streams open (``GET /sessions/{id}/live/events``, signed by the session's driver)
on the sessions in flight while they run, and open a new one whenever one ends, is refused or the
daemon is killed. The daemon's limits decide how many are open at once; the figures say how many were
opened, how they were refused (by status) and the most open at once."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable

import aiohttp
from eth_account.signers.local import LocalAccount

from ev_network.live_auth import sign_live_request
from ev_network.session_ids import hex_session_id


class StreamFlood:
    """``count`` apps streaming the live data of the sessions ``in_flight()`` returns (id -> driver)."""

    def __init__(self, live_url: str, count: int, in_flight: Callable[[], dict[int, LocalAccount]], seed: int) -> None:
        self.live_url, self.count, self.in_flight = live_url, count, in_flight
        self.rng = random.Random(seed)
        self.opened = 0
        self.refused: Counter[int] = Counter()
        self.failed = 0  # no connection (the daemon killed) or cut mid-stream
        self.open_now = self.most_open = 0

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(sock_connect=5)) as http:
            await asyncio.gather(*(self._app(http) for _ in range(self.count)))

    async def _app(self, http: aiohttp.ClientSession) -> None:
        while True:
            sessions = self.in_flight()
            if not sessions:
                await asyncio.sleep(0.1)
                continue
            session_id, driver = self.rng.choice(list(sessions.items()))
            expires = int(time.time()) + 120
            query = {"expires": str(expires), "signature": sign_live_request(driver, session_id, expires)}
            url = f"{self.live_url}/sessions/{hex_session_id(session_id)}/live/events"
            try:
                async with http.get(url, params=query) as response:
                    if response.status != 200:
                        self.refused[response.status] += 1
                        await asyncio.sleep(2)  # an app backs off before it tries again
                        continue
                    self.opened += 1
                    self.open_now += 1
                    self.most_open = max(self.most_open, self.open_now)
                    try:
                        async for _ in response.content:  # until the session ends or the stream is cut
                            pass
                    finally:
                        self.open_now -= 1
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                self.failed += 1
                await asyncio.sleep(2)

    def figures(self) -> dict:
        return {
            "apps": self.count,
            "opened": self.opened,
            "most_open_at_once": self.most_open,
            "refused": {str(status): n for status, n in sorted(self.refused.items())},
            "failed_or_cut": self.failed,
        }
