"""Request handling for our CPO endpoints: :class:`~core_client.ocpi.handling.Handling` (envelope, status
codes, message ids, routing headers) with the caller found among our eMSPs by its token instead of the
one CSMS registration. Token A opens only versions, details and the credentials POST; the modules want
token C."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from core_client.ocpi.cpo.peers import Peer, PeerStore, TokenKind
from core_client.ocpi.cpo.settings import CpoSettings
from core_client.ocpi.handling import Call, Fault, Handler, Handling, Reply
from core_client.ocpi.transport import Header, Party, StatusCode, presented_tokens

UNAUTHORIZED = "missing or unknown credentials token (Authorization: Token)"


@dataclass(frozen=True)
class Caller:
    """Who called: the eMSP and which of our tokens it presented (``Call.registration`` on this side)."""

    peer: Peer
    token: TokenKind


def caller(call: Call) -> Caller:
    return call.registration  # type: ignore[return-value]


def registered_only(handler: Handler) -> Handler:
    """``handler`` for a registered eMSP only (token C): token A is 401 here."""

    async def guarded(call: Call) -> Reply:
        if caller(call).token is not TokenKind.C:
            raise Fault(401, StatusCode.CLIENT_ERROR, UNAUTHORIZED)
        return await handler(call)

    return guarded


class CpoHandling(Handling):
    """:class:`Handling` for the eMSPs in ``peers``."""

    def __init__(self, settings: CpoSettings, peers: PeerStore) -> None:
        super().__init__(settings, store=None)  # type: ignore[arg-type]
        self.peers = peers

    def _authenticate(self, request: Request) -> Caller:  # type: ignore[override]
        for token in presented_tokens(request.headers.get(Header.AUTHORIZATION.value)):
            found = self.peers.authenticate(token)
            if found is not None:
                request.state.caller = Caller(*found)
                return request.state.caller
        raise Fault(401, StatusCode.CLIENT_ERROR, UNAUTHORIZED)

    def _counterpart(self, request: Request) -> Party | None:
        """Whom a response goes to when the request did not say: the calling eMSP's first party."""
        found: Caller | None = getattr(request.state, "caller", None)
        parties = found.peer.parties() if found else []
        return parties[0] if parties else None
