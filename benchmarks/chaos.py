"""Chaos benchmark (``make bench-chaos``): paid sessions while the Core Client is SIGKILLed at random
moments and its chain link is cut in the middle; prints JSON and exits 1 unless every session ended
exactly once and the tokens add up.

    python -m benchmarks.chaos [--sessions 200] [--charge-points 10] [--kills 10] [--outage 10] [--seed 1]
                               [--streams 0] [--instances 1] [--database postgresql://...]

A fresh Anvil with the contracts (deployed by the Brownie script), one station and one driver per
charge point. Each driver opens a session, the charge point (the simulator, reconnecting with
backoff and re-sending unanswered transaction messages) charges until the car unplugs, and the driver
opens the next when the last one ended on chain. The daemon is killed ``--kills`` times, each when a
seeded random share of the sessions has ended, and started again after a random pause; when half
have ended its chain link (a TCP proxy) is cut for ``--outage`` seconds. Everything random comes from
``--seed``. Figures: sessions settled exactly once, twice (must be 0), cancelled (refunded), stuck
(never ended: must be 0), token conservation, and how long the sessions caught in the outage took to
end after the chain came back.

With ``--instances N`` (2 or more) the operator runs N Core Client instances on one PostgreSQL (a
throwaway server of the run's own, or ``--database``) behind a round-robin TCP balancer
(:mod:`benchmarks.chaos_cluster`): each kill SIGKILLs the instance that leads, and the figures add how
long each takeover took (until an instance led again). Meanwhile ``--streams`` drivers' apps keep live event streams open on the
sessions in flight (:mod:`benchmarks.chaos_streams`; the daemon's [live] limits decide how many are
open at once: ``event_streams`` in the JSON)."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from benchmarks.chaos_cluster import Cluster
from benchmarks.chaos_parts import Daemon
from benchmarks.chaos_streams import StreamFlood
from benchmarks.load.chain import TOKEN, BenchChain, send_tx, setup_chain
from ev_network.contracts import Escrow, SessionState, Token
from ev_network.devaccounts import dev_account
from ev_network.events import EventReader
from simulator.charge_point import Behaviour, Reconnect, SimChargePoint
from simulator.fleet import close_all, fleet_ids
from tools.devchain import ChainProxy, exit_on_sigterm, free_port
from tools.pgserver import PostgresServer

ENDED = (SessionState.SETTLED, SessionState.CANCELLED, SessionState.EXPIRED, SessionState.CLOSED)
ENDINGS = ["SessionSettled", "SessionCancelled", "SessionExpired"]
DEPOSIT = 20 * TOKEN
DAEMON_SETTINGS = {
    "poll_interval_s": 0.2,
    "settle_batch_window_s": 0.3,
    "start_timeout_s": 30,
    "reconnect_grace_s": 10,
    "ocpp_response_timeout_s": 5,
    "rpc_timeout_s": 2,
    "max_power_kw": 10_000,  # the simulators' time runs 100x fast: 22 kW look like 2.2 MW
}


@dataclass(frozen=True)
class Plan:
    sessions: int = 200
    charge_points: int = 10
    kills: int = 10
    outage_s: float = 10.0
    seed: int = 1
    timeout_s: float = 900.0
    streams: int = 0  # make bench-chaos CHAOS_ARGS="--streams 500"
    instances: int = 1  # make bench-chaos CHAOS_ARGS="--instances 3": several on one PostgreSQL
    database: str | None = None  # their PostgreSQL (default: a throwaway server of the run's own)


class Campaign:
    def __init__(
        self, plan: Plan, chain: BenchChain, daemon: Daemon | Cluster, cut: ChainProxy, cp_ids: list[str]
    ) -> None:
        self.plan, self.chain, self.daemon, self.cut, self.cp_ids = plan, chain, daemon, cut, cp_ids
        self.rng = random.Random(plan.seed)
        self.escrow = Escrow(chain.w3, chain.deployment)
        self.opens = chain.prepare_opens(cp_ids, DEPOSIT)
        self.opened: list[int] = []
        self.ended: set[int] = set()
        self.open_now: set[int] = set()
        self.in_flight: dict[int, LocalAccount] = {}  # session -> its driver (who signs live requests)
        self.kill_log: list[dict] = []
        self.outage: dict = {}

    async def lane(self, i: int, count: int) -> None:
        """Driver i's sessions at charge point i, one after another."""
        for _ in range(count):
            receipt = await asyncio.to_thread(self._open, i)
            session_id = self.escrow.session_id_from(receipt)
            self.opened.append(session_id)
            self.open_now.add(session_id)
            self.in_flight[session_id] = self.chain.drivers[i]
            while (await asyncio.to_thread(self.escrow.get_session, session_id)).state not in ENDED:
                await asyncio.sleep(0.25)
            self.open_now.discard(session_id)
            del self.in_flight[session_id]
            self.ended.add(session_id)

    def _open(self, i: int) -> dict:
        return self.chain.w3.eth.wait_for_transaction_receipt(send_tx(self.chain.w3, self.opens[i]), timeout=60)

    async def chaos(self) -> None:
        """SIGKILL the daemon (the leading instance) when seeded random shares of the sessions have ended
        and start it again after a random pause; cut the chain at half."""
        marks = sorted(self.rng.uniform(0.05, 0.9) * self.plan.sessions for _ in range(self.plan.kills))
        events = sorted([(m, "kill") for m in marks] + [(self.plan.sessions / 2, "outage")])
        for mark, what in events:
            while len(self.ended) < mark:
                await asyncio.sleep(0.05)
            await asyncio.sleep(self.rng.uniform(0, 0.5))  # a random moment, not just after a settlement
            if what == "kill":
                moment = {"after_ended": len(self.ended), "in_flight": len(self.open_now)}
                self.kill_log.append(moment | await self.daemon.crash(self.rng.uniform(0, 1.5)))
            else:
                self.outage = {"after_ended": len(self.ended), "seconds": self.plan.outage_s}
                await self.cut.pause()
                caught = set(self.open_now)
                await asyncio.sleep(self.plan.outage_s)
                await self.cut.resume()
                back = time.monotonic()
                self.outage["caught"] = len(caught)
                while caught - self.ended:
                    await asyncio.sleep(0.05)
                self.outage["drained_s"] = round(time.monotonic() - back, 2)

    def balances(self) -> dict[str, int]:
        token = Token(self.chain.w3, self.chain.deployment.token)
        drivers = sum(token.balance_of(d.address) for d in self.chain.drivers[: len(self.cp_ids)])
        return {
            "drivers": drivers,
            "payout": token.balance_of(dev_account(2).address),
            "escrow": token.balance_of(self.chain.deployment.escrow),
        }

    def verdict(self, before: dict[str, int], after: dict[str, int]) -> dict:
        reader = EventReader(self.chain.w3, self.chain.deployment.escrow)
        events = reader.fetch(self.chain.deployment.deployment_block, reader.head(), ENDINGS)
        ours = set(self.opened)
        counts = Counter((e.name, e.args["sessionId"]) for e in events if e.args["sessionId"] in ours)
        settled = Counter({sid: n for (name, sid), n in counts.items() if name == "SessionSettled"})
        ended = {sid for (_, sid) in counts}
        per_session_ok = all(
            e.args["cost"] + e.args["refund"] == DEPOSIT if e.name == "SessionSettled" else e.args["refund"] == DEPOSIT
            for e in events
            if e.args["sessionId"] in ours
        )
        return {
            "sessions": len(self.opened),
            "settled_exactly_once": sum(1 for n in settled.values() if n == 1),
            "settled_twice": sum(1 for n in settled.values() if n > 1),
            "ended_more_than_once": sum(1 for n in Counter(sid for (_, sid) in counts.elements()).values() if n > 1),
            "cancelled_refunded": sum(n for (name, _), n in counts.items() if name == "SessionCancelled"),
            "expired": sum(n for (name, _), n in counts.items() if name == "SessionExpired"),
            "stuck": len(ours - ended),
            "tokens": {
                "before": before,
                "after": after,
                "conserved": sum(before.values()) == sum(after.values()) and after["escrow"] == before["escrow"],
                "each_deposit_split_exactly": per_session_ok,
            },
        }


def target(
    plan: Plan, workdir: Path, chain: BenchChain, rpc_url: str, passwords: dict[str, str], database: str | None
) -> Daemon | Cluster:
    """What the campaign kills: one daemon (with the live front end the event streams use), or a cluster."""
    if plan.instances > 1:
        assert database is not None
        return Cluster.configure(workdir, rpc_url, chain, passwords, plan.instances, database, **DAEMON_SETTINGS)
    # one address for all the apps: no per-address rate limit; the open-stream limits stay the daemon's
    live = {"port": free_port(), "requests_per_minute": 10**9, "max_streams_per_session": max(plan.streams, 1)}
    return Daemon.configure(workdir, rpc_url, chain, passwords, **DAEMON_SETTINGS, live=live)


async def drained(daemon: Daemon | Cluster, within_s: float = 10) -> dict:
    """The leader's /health once its queue is empty (or after ``within_s``): a lane ends when the chain
    says its session ended, and the leader marks the job done at its next receipt check, a moment later."""
    deadline = time.monotonic() + within_s
    while True:
        health = await asyncio.to_thread(daemon.health) or {}
        if health.get("queue_depth") == 0 or time.monotonic() > deadline:
            return health
        await asyncio.sleep(0.1)


async def run(plan: Plan, workdir: Path, say=lambda text: print(text, file=sys.stderr)) -> dict:
    cp_ids = fleet_ids(plan.charge_points, "CHAOS-")
    chain = await asyncio.to_thread(setup_chain, workdir, cp_ids, 1, say)
    cut, daemon, sims, postgres = ChainProxy(chain.anvil.port), None, [], None
    try:
        await cut.resume()
        database = plan.database
        if plan.instances > 1 and database is None:
            postgres = await asyncio.to_thread(PostgresServer().start)
            database = await asyncio.to_thread(postgres.create_database, "chaos")
        passwords = {cp: f"pw-{cp}" for cp in cp_ids}
        daemon = target(plan, workdir, chain, cut.url, passwords, database)
        await daemon.serve()
        campaign = Campaign(plan, chain, daemon, cut, cp_ids)
        for cp in cp_ids:  # the car unplugs after 0.2 to 1.5 kWh: sessions of about 0.3 to 2.5 s
            behaviour = Behaviour(power_w=22_000, time_accel=100, unplug_after_wh=campaign.rng.randint(200, 1500))
            reconnect = Reconnect(initial_s=0.2, max_s=2.0)
            sims.append(
                await SimChargePoint.connect(daemon.ocpp_url, cp, passwords[cp], 1, behaviour, reconnect=reconnect)
            )
        before = await asyncio.to_thread(campaign.balances)
        counts = [
            plan.sessions // plan.charge_points + (i < plan.sessions % plan.charge_points) for i in range(len(cp_ids))
        ]
        started = time.monotonic()
        live_url = f"http://127.0.0.1:{daemon.settings.live.port}" if isinstance(daemon, Daemon) else ""
        flood = StreamFlood(live_url, plan.streams, lambda: campaign.in_flight, plan.seed)
        streams = asyncio.create_task(flood.run())
        chaos = asyncio.create_task(campaign.chaos())
        lanes = asyncio.gather(*(campaign.lane(i, n) for i, n in enumerate(counts)))
        try:
            await asyncio.wait_for(asyncio.shield(lanes), plan.timeout_s)
            await asyncio.wait_for(chaos, 120)
        except TimeoutError:
            say(f"timed out after {plan.timeout_s:.0f}s: the sessions not ended count as stuck")
        finally:
            lanes.cancel()
            chaos.cancel()
            streams.cancel()
        seconds = time.monotonic() - started
        health = await drained(daemon)
        after = await asyncio.to_thread(campaign.balances)
        result = {
            "benchmark": "chaos",
            "plan": asdict(plan) | {"database": None if plan.database is None else "given"},
            **campaign.verdict(before, after),
            "kills": campaign.kill_log,
            "daemon_starts": daemon.starts,
            "outage": campaign.outage,
            "charge_point_reconnects": sum(s.reconnects for s in sims),
            "transaction_messages_resent": sum(s.resent for s in sims),
            "queue_depth_at_end": health.get("queue_depth"),
            "event_streams": flood.figures(),
            "seconds": round(seconds, 1),
        }
        if isinstance(daemon, Cluster):
            result["instances"] = daemon.figures()
        result["ok"] = result["settled_twice"] == 0 and result["stuck"] == 0 and result["tokens"]["conserved"]
        return result
    finally:
        await close_all(sims)
        if daemon is not None:
            await daemon.close()
        await cut.pause()
        chain.stop()
        if postgres is not None:
            postgres.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-chaos", description=__doc__.split("\n\n")[0])
    defaults = Plan()
    parser.add_argument("--sessions", type=int, default=defaults.sessions)
    parser.add_argument("--charge-points", type=int, default=defaults.charge_points)
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--outage", type=float, default=defaults.outage_s, help="seconds the chain link is cut")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--timeout", type=float, default=defaults.timeout_s)
    parser.add_argument("--streams", type=int, default=defaults.streams, help="apps keeping event streams open")
    parser.add_argument("--instances", type=int, default=defaults.instances, help="Core Client instances")
    parser.add_argument("--database", help="their PostgreSQL URL (--instances 2+; default: a throwaway server)")
    parser.add_argument("--workdir", type=Path, help="keep logs and state here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.sessions < args.charge_points:
        parser.error("--sessions must be at least --charge-points")
    exit_on_sigterm()
    if args.instances < 1 or (args.instances > 1 and args.streams):
        parser.error("--instances: 1 or more; the event streams (--streams) run against one instance only")
    plan = Plan(
        args.sessions,
        args.charge_points,
        args.kills,
        args.outage,
        args.seed,
        args.timeout,
        args.streams,
        args.instances,
        args.database,
    )
    with tempfile.TemporaryDirectory(prefix="evn-chaos-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run(plan, workdir))
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
