"""Fuzz run (``make fuzz``): seeded hostile OCPP-J frames from an authenticated charge point against
the real Core Client over websockets, while a well-behaved charge point keeps sending Heartbeats;
prints JSON and exits 1 unless nothing crashed, memory stayed bounded and the good charge point was
served throughout; then the descriptor-exhaustion shape (:mod:`benchmarks.fuzz_descriptors`).

    python -m benchmarks.fuzz [--frames 10000] [--seed 1] [--skip-defect-shapes] [--descriptor-seconds 30]

The daemon runs as its own process on a fresh Anvil (the contracts deployed by the Brownie script,
two stations). Frames come from :mod:`benchmarks.fuzz_frames`. Each CALL with a readable id must be
answered (CALLRESULT or CALLERROR) within ``--reply-timeout``; when the daemon closes the fuzzing
connection, the close code is counted and the charge point connects again. Figures: frames per kind,
answers per CALLERROR code, unanswered CALLs, server closes, the daemon's RSS (start, max, end), the
good charge point's Heartbeat latency, and the slowest frames."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import websockets
from ocpp.v16 import call
from websockets.exceptions import ConnectionClosed

from benchmarks.chaos_parts import Daemon
from benchmarks.fuzz_descriptors import exhaust_descriptors
from benchmarks.fuzz_frames import DEFECT_SHAPES, Frame, FrameGenerator
from benchmarks.load.chain import setup_chain
from simulator.charge_point import Reconnect, SimChargePoint
from tools.devchain import exit_on_sigterm

RSS_GROWTH_MAX_MB = 150
GOOD_P99_MAX_MS = 500
FUZZ_CP, GOOD_CP = "FUZZ-0001", "GOOD-0001"
BOOT = [2, "boot", "BootNotification", {"chargePointVendor": "Fuzz", "chargePointModel": "F"}]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class FuzzLink:
    """The fuzzing charge point's websocket: answers by message id, reconnecting when closed."""

    def __init__(self, url: str, cp_id: str, password: str) -> None:
        self.url = f"{url}/{cp_id}"
        self.auth = "Basic " + base64.b64encode(f"{cp_id}:{password}".encode()).decode()
        self.answers: dict[str, list] = {}
        self.closes: Counter[str] = Counter()
        self.arrived = asyncio.Event()
        self.ws: Any = None
        self._reader: asyncio.Task | None = None

    async def connect(self) -> None:
        self.ws = await websockets.connect(
            self.url, subprotocols=["ocpp1.6"], additional_headers={"Authorization": self.auth}, max_size=None
        )
        self._reader = asyncio.create_task(self._read(self.ws))
        await self.ws.send(json.dumps(BOOT))
        if await self.answer("boot", 10) is None:
            raise RuntimeError("the fuzzing charge point got no answer to its BootNotification")

    async def _read(self, ws: Any) -> None:
        try:
            async for message in ws:
                try:
                    frame = json.loads(message)
                except ValueError:
                    continue
                if isinstance(frame, list) and len(frame) > 2 and frame[0] in (3, 4):
                    self.answers[str(frame[1])] = frame
                    self.arrived.set()
        except ConnectionClosed:
            pass
        finally:
            self.closes[str(ws.close_code)] += 1
            self.arrived.set()  # whoever waits for an answer on this connection stops waiting

    async def answer(self, call_id: str, timeout: float) -> list | None:
        deadline = time.monotonic() + timeout
        while (found := self.answers.pop(call_id, None)) is None:
            left = deadline - time.monotonic()
            if left <= 0 or self._reader is None or self._reader.done():
                return None
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                return None
        return found

    async def send(self, frame: Frame) -> None:
        if self._reader is None or self._reader.done():
            await self.connect()
        try:
            await self.ws.send(frame.data)
        except ConnectionClosed:
            await self.connect()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def heartbeats(good: SimChargePoint, latencies: list[float], misses: list[float], stop: asyncio.Event) -> None:
    """The well-behaved charge point: a Heartbeat every 0.1 s, each answer timed. After a lost
    connection (the daemon froze past the keepalive timeout) it waits until it is back."""
    while not stop.is_set():
        if not good.online.is_set():
            waiters = {asyncio.ensure_future(good.online.wait()), asyncio.ensure_future(stop.wait())}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            continue
        sent = time.perf_counter()
        try:
            await asyncio.wait_for(good.call(call.Heartbeat(), suppress=False), 10)
            latencies.append(time.perf_counter() - sent)
        except Exception:  # timeout, CALLERROR, lost connection: the good charge point was not served
            misses.append(time.perf_counter() - sent)
        await asyncio.sleep(0.1)


async def fuzz(
    daemon: Daemon,
    frames: Iterable[Frame],
    reply_timeout: float,
    fuzzer: tuple[str, str] = (FUZZ_CP, "fuzz-password"),
    good_cp: tuple[str, str] = (GOOD_CP, "good-password"),
) -> dict:
    """Send ``frames`` from the charge point ``fuzzer`` (id, password) while ``good_cp`` heartbeats."""
    pid = daemon.process.pid
    good = await SimChargePoint.connect(daemon.ocpp_url, *good_cp, 1, reconnect=Reconnect(0.2, 2.0))
    link = FuzzLink(daemon.ocpp_url, *fuzzer)
    await link.connect()
    rss = [rss_mb(pid) or 0.0]
    latencies: list[float] = []
    misses: list[float] = []
    stop = asyncio.Event()
    beating = asyncio.create_task(heartbeats(good, latencies, misses, stop))
    kinds, codes, unanswered, slowest = Counter(), Counter(), Counter(), []
    started = time.monotonic()
    try:
        for n, frame in enumerate(frames):
            kinds[frame.kind] += 1
            sent = time.perf_counter()
            await link.send(frame)
            if frame.call_id is not None:
                answer = await link.answer(frame.call_id, reply_timeout)
                took = time.perf_counter() - sent
                if answer is None:
                    unanswered[frame.kind] += 1
                else:
                    codes["CALLRESULT" if answer[0] == 3 else str(answer[2])] += 1
                slowest = sorted([*slowest, (took, frame.kind, frame.excerpt())], reverse=True)[:5]
            if n % 50 == 0:
                rss.append(rss_mb(pid) or 0.0)
                await asyncio.sleep(0)
    finally:
        await link.close()
        stop.set()
        await beating
        await good.close()
    await asyncio.sleep(2)  # let the daemon free what the connection held
    alive = daemon.process.poll() is None
    rss.append(rss_mb(pid) or 0.0)
    shapes = {k: kinds[k] for k in DEFECT_SHAPES if kinds[k]}
    ms = sorted(1000 * t for t in latencies) or [0.0]
    result = {
        "frames": sum(kinds.values()),
        "seconds": round(time.monotonic() - started, 1),
        "frames_by_kind": dict(kinds),
        "answers_by_code": dict(codes),
        "unanswered_calls_by_kind": dict(unanswered),
        "server_closes_by_code": dict(link.closes),
        "daemon_alive": alive,
        "daemon_exit_code": daemon.process.returncode,
        "daemon_rss_mb": {"start": round(rss[0], 1), "max": round(max(rss), 1), "end": round(rss[-1], 1)},
        "good_charge_point": {
            "heartbeats": len(latencies),
            "missed": len(misses),
            "connection_lost": good.reconnects,
            "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
            "max_ms": round(ms[-1], 1),
        },
        "slowest_frames": [{"ms": round(1000 * t, 1), "kind": k, "frame": x} for t, k, x in slowest],
        "defect_shape_frames_sent": {k: {"frames": n, "defect": DEFECT_SHAPES[k]} for k, n in shapes.items()},
    }
    result["ok"] = (
        alive
        and rss[-1] - rss[0] < RSS_GROWTH_MAX_MB
        and not misses
        and not good.reconnects
        and result["good_charge_point"]["p99_ms"] < GOOD_P99_MAX_MS
        and not unanswered
    )
    return result


async def run(
    frames: int, seed: int, skip_known: bool, reply_timeout: float, descriptor_s: float, workdir: Path, say
) -> dict:
    chain = await asyncio.to_thread(setup_chain, workdir, [FUZZ_CP, GOOD_CP], 2, say)
    passwords = {FUZZ_CP: "fuzz-password", GOOD_CP: "good-password"}
    daemon = Daemon.configure(workdir, chain.anvil.url, chain, passwords, poll_interval_s=0.2)
    try:
        daemon.start()
        await daemon.wait_healthy()
        generator = FrameGenerator(seed, skip=frozenset(DEFECT_SHAPES) if skip_known else frozenset())
        result = await fuzz(daemon, generator.frames(frames), reply_timeout)
        if descriptor_s > 0:
            good, again = (GOOD_CP, passwords[GOOD_CP]), (FUZZ_CP, passwords[FUZZ_CP])
            shape = await exhaust_descriptors(daemon, good, again, descriptor_s)
            result = {**result, "descriptor_exhaustion": shape, "ok": result["ok"] and shape["ok"]}
        return {"benchmark": "fuzz", "seed": seed, "skip_defect_shapes": skip_known, **result}
    finally:
        daemon.stop()
        chain.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reply-timeout", type=float, default=30.0, help="seconds a CALL may wait for its answer")
    parser.add_argument(
        "--skip-defect-shapes", action="store_true", help="leave out the shapes of the fixed defects (issues 9 and 17)"
    )
    parser.add_argument(
        "--descriptor-seconds",
        type=float,
        default=30,
        help="keep the daemon out of file descriptors this long (0: skip)",
    )
    parser.add_argument("--workdir", type=Path, help="keep logs and state here (default: a temporary folder)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="evn-fuzz-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        say = lambda text: print(text, file=sys.stderr)  # noqa: E731
        shape_s = args.descriptor_seconds
        result = asyncio.run(
            run(args.frames, args.seed, args.skip_defect_shapes, args.reply_timeout, shape_s, workdir, say)
        )
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
