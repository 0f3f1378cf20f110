"""The wallet's client of a Core Client's live data (``core_client.web.live``).

A session's live data (energy so far, power, cost so far, deposit left, connector status) is served to
that session's driver only. The wallet proves it is the driver by signing, with the account's key, a
short-lived request over the session id (:mod:`ev_network.live_auth`). Nothing secret leaves the
wallet: the signature is only good for that session and until it expires.

    client = LiveClient("http://cpo.example:9002", account)
    live = client.session(session_id)   # dict: energy_wh, power_w, cost, deposit_left, ...
    stations = client.stations()        # public: the operator's stations and connector availability
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from eth_account.signers.local import LocalAccount

from ev_network.live_auth import sign_live_request
from ev_network.session_ids import hex_session_id
from wallet.errors import WalletError

VALIDITY_S = 120  # a signed request is good for two minutes
TIMEOUT_S = 5


class LiveUnavailable(WalletError):
    """The Core Client's live data cannot be read (not configured, down, or it refused the request)."""


class LiveClient:
    """Reads a Core Client's live endpoint for one driver account."""

    def __init__(self, base_url: str, account: LocalAccount | None = None, timeout: float = TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.timeout = timeout

    def __repr__(self) -> str:  # never show the account object (it holds the key)
        return f"LiveClient({self.base_url})"

    def session_url(self, session_id: int, now: float | None = None, suffix: str = "") -> str:
        """The signed URL of ``session_id``'s live data (``suffix="/events"``: its event stream)."""
        if self.account is None:
            raise LiveUnavailable("live session data needs the unlocked account: it signs the request")
        expires = int(now if now is not None else time.time()) + VALIDITY_S
        query = urllib.parse.urlencode(
            {"expires": expires, "signature": sign_live_request(self.account, session_id, expires)}
        )
        return f"{self.base_url}/sessions/{hex_session_id(session_id)}/live{suffix}?{query}"

    def session(self, session_id: int) -> dict[str, Any]:
        """The live data of one of the account's sessions."""
        return self._get(self.session_url(session_id))

    def stations(self) -> list[dict[str, Any]]:
        """The operator's stations: ``[{station_id, charge_point_id, connectors: [{connector, status}]}]``."""
        return self._get(f"{self.base_url}/stations")["stations"]

    def _get(self, url: str) -> Any:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                reason = exc.reason
            raise LiveUnavailable(f"the Core Client refused the live data request ({exc.code}: {reason})") from None
        except (OSError, ValueError) as exc:
            raise LiveUnavailable(f"cannot reach the Core Client's live data at {self.base_url} ({exc})") from None
