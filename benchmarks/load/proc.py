"""Child processes of the load benchmark: line-protocol control, clean shutdown, CPU and memory from /proc."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ChildFailed(RuntimeError):
    """A child process exited or did not answer in time."""


class Child:
    """A Python child process started in the project root; stdout is read line by line, stderr goes to a log."""

    def __init__(self, name: str, args: list[str], log_file: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_file = log_file
        self._log = log_file.open("w")
        self.process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float) -> str:
        """The rest of the next stdout line starting with ``prefix`` (other lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildFailed(f"{self.name}: no {prefix!r} within {timeout:.0f}s{self.tail()}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise ChildFailed(f"{self.name} exited (code {self.process.wait()}){self.tail()}")
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def send(self, line: str) -> None:
        """Write one line to the child's stdin (ignored if it is gone)."""
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def tail(self, lines: int = 15) -> str:
        """The end of the child's stderr log, for error messages."""
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return ""
        return ("\n  " + "\n  ".join(text)) if text else ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, its live children and the children it has reaped (a server such as
    PostgreSQL: the postmaster and its backends)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / CLOCK_TICKS  # utime, stime, cutime, cstime
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            child = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(child[1]) == pid:  # ppid
            total += (int(child[11]) + int(child[12])) / CLOCK_TICKS
    return total


class LoadAverage(threading.Thread):
    """The machine's 1-minute load average during a run (sampled each second): at the start, at the end,
    and its peak. The machine may be shared: a figure goes with the load it was measured under."""

    def __init__(self) -> None:
        super().__init__(name="load-average", daemon=True)
        self.at_start = os.getloadavg()[0]
        self.peak = self.at_start
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            self.peak = max(self.peak, os.getloadavg()[0])

    def figures(self) -> dict[str, float]:
        self.halt.set()
        now = os.getloadavg()[0]
        return {"at_start": round(self.at_start, 2), "at_end": round(now, 2), "peak": round(max(self.peak, now), 2)}


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of a process, in kB."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


class Monitor(threading.Thread):
    """Samples a process's RSS every ``interval`` seconds: the peak since start, the peak since
    :meth:`mark` (the load phase), and the kernel's VmHWM."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(name=f"monitor-{pid}", daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_rss_kb = 0
        self.peak_since_mark_kb = 0
        self.vmhwm_kb = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.interval)

    def sample(self) -> None:
        values = memory_kb(self.pid)
        rss = values.get("VmRSS", 0)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_since_mark_kb = max(self.peak_since_mark_kb, rss)
        self.vmhwm_kb = max(self.vmhwm_kb, values.get("VmHWM", 0))

    def mark(self) -> None:
        """Start a new 'since mark' peak (at the start of the load phase)."""
        self.peak_since_mark_kb = 0
        self.sample()

    def stop(self) -> None:
        self.sample()
        self.halt.set()
        self.join(timeout=2)


def timer_jitter(seconds: float = 2.0) -> dict[str, float]:
    """How late a 1 ms sleep wakes up on this machine (p99 and max, ms): the floor under any p99 here."""
    late = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        before = time.perf_counter()
        time.sleep(0.001)
        late.append(time.perf_counter() - before - 0.001)
    late.sort()
    return {
        "sleep_1ms_late_p99_ms": round(late[int(0.99 * (len(late) - 1))] * 1000, 2),
        "sleep_1ms_late_max_ms": round(late[-1] * 1000, 2),
    }
