"""Our Tokens module as the CPO (RECEIVER, mod_tokens "Receiver Interface"): a registered eMSP pushes its
Tokens to ``{tokens}/{country_code}/{party_id}/{token_uid}[?type={type}]`` (type RFID when omitted):

- PUT: a new or updated Token; the URL's country_code / party_id must be one of the eMSP's parties and the
  Token's own, its uid and type the URL's (else 2001);
- PATCH: properties of a Token we hold (``last_updated`` required; 404 / 2004 for a Token we do not hold);
- GET: the Token as we hold it (404 / 2004 when we hold none).

An invalidated Token is a PUT or PATCH with ``valid`` false (Tokens are never deleted). What we hold is
:class:`~core_client.ocpi.cpo.token_store.TokenStore`'s; how a tapped Token is decided: :mod:`.taps`."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from core_client.ocpi.cpo.handling import caller, registered_only
from core_client.ocpi.cpo.token_store import TokenStore
from core_client.ocpi.handling import Call, Fault, Reply, invalid, not_found
from core_client.ocpi.models import Token
from core_client.ocpi.models.enums import TokenType
from core_client.ocpi.receivers import patched, same_id, same_owner
from core_client.ocpi.transport import Party, StatusCode


def token_type(call: Call) -> TokenType:
    """The URL's ``type`` (RFID when omitted)."""
    text = call.request.query_params.get("type", TokenType.RFID.value)
    try:
        return TokenType(text)
    except ValueError:
        raise invalid(f"type={text!r} is not a TokenType") from None


class TokenReceiver:
    """GET / PUT / PATCH of the eMSPs' Tokens, kept in ``tokens``."""

    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens

    def routes(self, wrap: Any, prefix: str) -> list[Route]:
        path = f"{prefix}/tokens/{{country_code}}/{{party_id}}/{{uid}}"
        return [Route(path, wrap(registered_only(self.token)), methods=["GET", "PUT", "PATCH"])]

    async def token(self, call: Call) -> Reply:
        peer = caller(call).peer
        party = Party(call.segment("country_code"), call.segment("party_id"))
        if not peer.owns(party):
            raise not_found(f"party {party} of yours")
        uid, kind = call.segment("uid"), token_type(call)
        stored = self.tokens.get(party.country_code, party.party_id, uid, kind)
        if call.method == "GET" or (call.method == "PATCH" and stored is None):
            if stored is None:
                raise Fault(404, StatusCode.UNKNOWN_TOKEN, f"Token {party}/{uid} ({kind.value}) is not known here")
            return Reply(stored.to_json())
        if call.method == "PUT":
            token = call.model(Token)
        else:
            assert stored is not None
            token = Token.model_validate(patched(stored.to_json(), call.body, {"uid": uid, "type": kind.value}))
        same_owner(token.country_code, token.party_id, party)
        same_id("uid", token.uid, uid)
        if token.type is not kind:
            raise invalid(f"type {token.type.value} differs from the URL's {kind.value}")
        created = self.tokens.put(peer.name, token)
        return Reply(http_status=201 if created else 200)
