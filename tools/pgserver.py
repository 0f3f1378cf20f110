"""A throwaway PostgreSQL server for the tests and benchmarks: Debian's ``postgresql`` binaries,
a fresh cluster in a temporary folder, a free port on 127.0.0.1 and its Unix socket in that folder.

PostgreSQL refuses to run as root, and the tests and CI run as root: then the cluster belongs to the
``postgres`` user (initdb and the server run as that user). The server runs in the foreground as our
child (no pg_ctl daemon): it ends with its starter on every way out (``stop``, atexit, SIGTERM to the
starter, and the parent-death signal when the starter is SIGKILLed), and ``stop`` removes the folder.

    with PostgresServer() as server:
        url = server.create_database("t1")   # postgresql://evn@127.0.0.1:PORT/t1

``python -m tools.pgserver`` runs one until Ctrl-C and prints its URL (for a devnet or a benchmark by hand).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from ev_network.errors import EVNetworkError
from tools.devchain import child_options, exit_on_sigterm, free_port

USER = "evn"  # the cluster's superuser (trust authentication: a test server only, on 127.0.0.1)
# Durability is not what a test server is for: no fsync makes initdb and every commit faster.
TEST_OPTIONS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class PostgresUnavailable(EVNetworkError):
    """No PostgreSQL binaries, or the server did not start."""


def postgres_bindir() -> Path:
    """Where initdb and postgres are: ``$EVN_PG_BIN``, else the newest /usr/lib/postgresql/N/bin, else PATH."""
    if os.environ.get("EVN_PG_BIN"):
        return Path(os.environ["EVN_PG_BIN"])
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if versions:
        return versions[-1].parent
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, postgres): run tools/setup.sh as root, or "
        "apt-get install -y postgresql, or set EVN_PG_BIN to their folder"
    )


class PostgresServer:
    """One PostgreSQL cluster and server; a context manager, or :meth:`start` and :meth:`stop`."""

    def __init__(self, port: int | None = None, options: tuple[str, ...] = TEST_OPTIONS) -> None:
        self.port = port or free_port()
        self.options = options
        self.bindir = postgres_bindir()
        self.folder: Path | None = None
        self.process: subprocess.Popen | None = None
        self._command: list[str] = []
        # as root, everything runs as the `postgres` user (the server refuses root)
        self._user = "postgres" if os.geteuid() == 0 else None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> PostgresServer:
        self.folder = Path(tempfile.mkdtemp(prefix="evn-pg-"))
        atexit.register(self.stop)
        if self._user:
            account = pwd.getpwnam(self._user)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        data = self.folder / "data"
        self._run(
            [self.bindir / "initdb", "-D", data, "-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]
        )
        settings = [f"port={self.port}", f"unix_socket_directories={self.folder}", "listen_addresses=127.0.0.1"]
        self._command = [str(self.bindir / "postgres"), "-D", str(data)]
        for setting in (*settings, *self.options):
            self._command += ["-c", setting]
        self._spawn(timeout)
        return self

    def _spawn(self, timeout: float) -> None:
        assert self.folder is not None
        with open(self.folder / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                self._command, stdout=log, stderr=subprocess.STDOUT, user=self._user, **child_options()
            )
        self._wait_ready(timeout)

    def _run(self, command: list) -> None:
        result = subprocess.run(
            [str(part) for part in command], capture_output=True, text=True, user=self._user, cwd=self.folder
        )
        if result.returncode != 0:
            self.stop()
            raise PostgresUnavailable(f"{Path(command[0]).name} failed: {(result.stderr or result.stdout).strip()}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                break
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise PostgresUnavailable(f"PostgreSQL did not start on port {self.port} within {timeout:g}s: {tail}")

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = (self.folder / "server.log").read_text(errors="replace") if self.folder else ""
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def create_database(self, name: str) -> str:
        """A new empty database ``name`` (lower-case letters, digits, _); its URL. About a second each here:
        for many small ones, :meth:`create_schema`."""
        self._sql(f"CREATE DATABASE {_plain(name)}")
        return self.url(name)

    def create_schema(self, name: str, database: str = "postgres") -> str:
        """A new empty schema ``name`` in ``database``; the URL of ``database`` with that schema first in the
        search path, so that whoever connects with it works in the schema alone (a few milliseconds)."""
        self._sql(f"CREATE SCHEMA {_plain(name)}", database)
        return f"{self.url(database)}?options=-csearch_path%3D{name}"

    def _sql(self, statement: str, database: str = "postgres") -> None:
        with psycopg.connect(self.url(database), autocommit=True) as connection:
            connection.execute(statement)

    def restart(self, timeout: float = 30.0) -> None:
        """Stop the server (fast shutdown: its clients are cut off) and start it again: same port, same data."""
        self._shutdown()
        self._spawn(timeout)

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        atexit.unregister(self.stop)
        self._shutdown()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def _shutdown(self) -> None:
        """SIGINT (PostgreSQL's fast shutdown; SIGTERM would wait for every client), SIGKILL after 10 s."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _plain(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"not a plain database or schema name: {name!r}")
    return name


def main() -> None:
    exit_on_sigterm()
    try:
        with PostgresServer(options=()) as server:
            print(server.create_database("evn"), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                server.process.wait()
    except PostgresUnavailable as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
