"""A minimal eMSP written with the standard library (http.server) that records what a CPO platform sends it,
and a plain OCPI caller (urllib, headers written by hand): what the stand-in CPO platform
(tests/interop/ocpi_cpo.js) is checked with on its own, sharing no code with our OCPI side."""

from __future__ import annotations

import base64
import json
import queue
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ev_network import ocmf
from tools.harness.ocpi.peers import TOKEN_A, Cpo

TOKEN_B = "token-b-of-the-emsp"
EMSP_ROLE = {"role": "EMSP", "business_details": {"name": "Test eMSP"}, "party_id": "EMS", "country_code": "NL"}
WAIT = 15


def auth(token: str) -> str:
    return "Token " + base64.b64encode(token.encode()).decode()


@dataclass
class Answer:
    http: int
    headers: dict
    body: dict


def call(method: str, url: str, token: str | None = None, body: object = None, raw: bytes | None = None) -> Answer:
    """One request with OCPI's headers (X-Request-ID, X-Correlation-ID, routing for the EMS eMSP)."""
    headers = {"X-Request-ID": str(uuid.uuid4()), "X-Correlation-ID": str(uuid.uuid4())}
    if token is not None:
        headers["Authorization"] = auth(token)
    if "/2.2.1/" in url and "/credentials" not in url:
        headers |= {
            "OCPI-from-country-code": "NL",
            "OCPI-from-party-id": "EMS",
            "OCPI-to-country-code": "DE",
            "OCPI-to-party-id": "EVP",
        }
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return Answer(response.status, dict(response.headers), json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), json.loads(error.read()))


@dataclass
class Emsp:
    """The eMSP side: versions, details, and a recorder of everything the CPO sends to its endpoints."""

    url: str
    received: queue.Queue = field(default_factory=queue.Queue)
    forgets_sessions: bool = False  # answer Session PATCHes 404, as an eMSP that lost them

    def next(self, method: str, path_part: str) -> dict:
        """The next request the CPO sent with this method and path part (earlier other ones are skipped)."""
        while True:
            request = self.received.get(timeout=WAIT)
            if request["method"] == method and path_part in request["path"]:
                return request


def emsp_server() -> tuple[ThreadingHTTPServer, Emsp]:
    emsp = Emsp("")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def answer(self, status: int, data: object = None, extra: dict | None = None, code: int = 1000) -> None:
            body = {"status_code": code, "timestamp": "2026-12-06T12:00:00Z"} | ({} if data is None else {"data": data})
            text = json.dumps(body).encode()
            self.send_response(status)
            for name in ("X-Request-ID", "X-Correlation-ID"):
                self.send_header(name, self.headers.get(name, ""))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            emsp.received.put({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
            base = emsp.url
            if self.path == "/emsp/versions":
                return self.answer(200, [{"version": "2.2.1", "url": f"{base}/emsp/2.2.1"}])
            if self.path == "/emsp/2.2.1":
                modules = [("credentials", "SENDER"), ("locations", "RECEIVER"), ("tariffs", "RECEIVER"), ("sessions", "RECEIVER"),
                           ("cdrs", "RECEIVER"), ("commands", "SENDER"), ("tokens", "SENDER")]  # fmt: skip
                endpoints = [{"identifier": m, "role": r, "url": f"{base}/emsp/2.2.1/{m}"} for m, r in modules]
                return self.answer(200, {"version": "2.2.1", "endpoints": endpoints})
            if self.command == "POST" and "/authorize" in self.path:
                uid = self.path.split("/")[-2]
                if uid == "UNKNOWN":
                    return self.answer(404, code=2004)
                token = start_session(emsp, "LOC-1", "EVSE-1")["token"] | {
                    "uid": uid,
                    "type": self.path.split("type=")[1],
                }
                info = {"allowed": "ALLOWED", "token": token, "location": body, "authorization_reference": "AUTH-REF-1"}
                return self.answer(200, info)
            if self.command == "PATCH" and "/sessions/" in self.path and emsp.forgets_sessions:
                emsp.forgets_sessions = False
                return self.answer(404, code=2001)
            if self.command == "PUT" and self.path.endswith("/credentials"):
                return self.answer(200, {"token": "token-b-2", "url": f"{base}/emsp/versions", "roles": [EMSP_ROLE]})
            if self.command == "POST" and self.path.endswith("/cdrs"):
                return self.answer(201, extra={"Location": f"{base}/emsp/2.2.1/cdrs/{body['id']}"})
            return self.answer(200)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    emsp.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, emsp


def register(peer: Cpo, emsp: Emsp) -> str:
    """The credentials handshake; returns token C."""
    credentials = {"token": TOKEN_B, "url": f"{emsp.url}/emsp/versions", "roles": [EMSP_ROLE]}
    answer = call("POST", peer.ocpi("2.2.1/credentials"), TOKEN_A, credentials)
    assert (answer.http, answer.body["status_code"]) == (200, 1000), answer.body
    return answer.body["data"]["token"]


UID = ocmf.session_id_tag(42)  # the token uid the eMSP would choose for chain session 42


def start_session(emsp: Emsp, location: str, evse: str) -> dict:
    token = {"country_code": "NL", "party_id": "EMS", "uid": UID, "type": "APP_USER", "contract_id": "NL-EMS-C00000001",
             "issuer": "Test eMSP", "valid": True, "whitelist": "NEVER", "last_updated": "2026-12-06T12:00:00Z"}  # fmt: skip
    return {
        "response_url": f"{emsp.url}/emsp/2.2.1/commands/START_SESSION/1",
        "token": token,
        "location_id": location,
        "evse_uid": evse,
    }
