"""A chain outage as the chain-side loops see it: logged once when it starts and once when it ends, with
the retry delay growing meanwhile."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("core_client.chain")


class Outage:
    """Logs a chain outage once when it starts and once when it ends; gives the retry delay."""

    def __init__(self, what: str, first: float = 0.5, longest: float = 5.0) -> None:
        self.what, self.first, self.longest = what, first, longest
        self.since: float | None = None
        self.delay = first

    def failed(self, error: Exception) -> float:
        if self.since is None:
            self.since = time.monotonic()
            log.warning("%s: chain unreachable (%s); retrying until it is back", self.what, error)
        else:
            self.delay = min(self.delay * 2, self.longest)
        return self.delay

    def ok(self) -> None:
        if self.since is not None:
            log.warning("%s: chain reachable again after %.1fs", self.what, time.monotonic() - self.since)
        self.since, self.delay = None, self.first
