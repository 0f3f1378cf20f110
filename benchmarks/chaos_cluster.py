"""Several Core Client instances of one operator on one PostgreSQL, as the target of the chaos benchmark
(``python -m benchmarks.chaos --instances N``). Every instance serves charge points; they reach them
through one TCP balancer (:class:`tools.devchain.ChainProxy` over their OCPP ports, round robin: each
new connection goes to the next instance in turn, one that is down is passed over), so a charge point
often comes back to another instance than the one it left. A crash SIGKILLs the instance that leads
(holds the signer lease), times the takeover (until an instance says "leader" on /health again) and
starts the killed one again after a pause: it stands by then, or leads if it takes the lease first."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks.chaos_parts import Daemon
from tools.devchain import ChainProxy

POLL_S = 0.1
TAKEOVER_TIMEOUT_S = 60.0


class Cluster:
    """``count`` Core Client processes on one database, behind one balancer; the same face as
    :class:`Daemon` to the campaign (:meth:`serve`, :meth:`crash`, :meth:`health`, :meth:`close`)."""

    def __init__(self, daemons: list[Daemon]) -> None:
        self.daemons = daemons
        self.balancer = ChainProxy(*(d.settings.listen_port for d in daemons), spread=True)
        self.takeovers_s: list[float] = []

    @classmethod
    def configure(
        cls, workdir: Path, rpc_url: str, chain: Any, passwords: dict[str, str], count: int, database: str, **extra: Any
    ) -> Cluster:
        """``count`` instances (``instance-1`` ...) of the chain's operator on ``database`` (a PostgreSQL URL),
        all reading events from the next block on."""
        start_block = chain.w3.eth.block_number + 1
        daemons = [
            Daemon.configure(
                workdir, rpc_url, chain, passwords, f"instance-{i}", database=database, start_block=start_block, **extra
            )
            for i in range(1, count + 1)
        ]
        return cls(daemons)

    @property
    def ocpp_url(self) -> str:
        """Where the charge points connect: the balancer."""
        return f"ws://127.0.0.1:{self.balancer.port}"

    @property
    def starts(self) -> int:
        return sum(d.starts for d in self.daemons)

    @property
    def log_files(self) -> list[Path]:
        return [d.log_file for d in self.daemons]

    async def serve(self, timeout: float = 60) -> dict[str, Any]:
        """Open the balancer, start every instance; once each serves and one leads, the leader's /health."""
        await self.balancer.resume()
        for daemon in self.daemons:
            daemon.start()
        for daemon in self.daemons:
            await daemon.wait_healthy(timeout)
        return (await self.leader(timeout))[1]

    async def leader(self, timeout: float = TAKEOVER_TIMEOUT_S) -> tuple[Daemon, dict[str, Any]]:
        """The instance that leads (and its /health), once one does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            healths = await asyncio.gather(*(asyncio.to_thread(d.health) for d in self.daemons))
            for daemon, health in zip(self.daemons, healths, strict=True):
                if health is not None and health.get("role") == "leader":
                    return daemon, health
            await asyncio.sleep(POLL_S)
        raise RuntimeError(f"no instance led within {timeout:.0f}s: see {', '.join(map(str, self.log_files))}")

    async def crash(self, pause: float) -> dict[str, Any]:
        """SIGKILL the leader, start it again after ``pause`` seconds; which one it was, how long until an
        instance led again (``takeover_s``) and which."""
        leader, _ = await self.leader()
        leader.kill()
        killed = time.monotonic()

        async def restart() -> None:
            await asyncio.sleep(pause)
            leader.start()

        back = asyncio.create_task(restart())
        try:
            successor, _ = await self.leader()
            takeover_s = round(time.monotonic() - killed, 2)
        finally:
            await back
        self.takeovers_s.append(takeover_s)
        return {
            "killed": leader.name,
            "down_s": round(pause, 2),
            "takeover_s": takeover_s,
            "new_leader": successor.name,
        }

    def health(self) -> dict[str, Any] | None:
        """The leader's /health (None: no instance leads now)."""
        for daemon in self.daemons:
            health = daemon.health()
            if health is not None and health.get("role") == "leader":
                return health
        return None

    def figures(self) -> dict[str, Any]:
        """Takeover times after the leader was killed (seconds, in order; the longest)."""
        return {
            "instances": len(self.daemons),
            "takeovers_s": self.takeovers_s,
            "takeover_max_s": max(self.takeovers_s, default=None),
        }

    async def close(self) -> None:
        """Stop every instance (SIGTERM: each drains what it sent), then the balancer."""
        for daemon in self.daemons:
            daemon.stop()
        await self.balancer.pause()
