"""The credentials module of 2.2.1 with the Core Client as the CPO the eMSP registers with
(credentials.asciidoc, "Receiver" side of the handshake):

- POST with the token A we issued: we GET the eMSP's versions with its token B, pick 2.2.1, GET its
  details, keep its token, endpoints and roles, void token A and answer our credentials with a new token C.
- PUT with token C: the same again (its new token, its endpoints re-read, a new token C for it).
- DELETE with token C: the registration ends; both tokens are void.
- GET: our credentials (token C once registered, else the token A it called with).
Its platform unreachable or without a 2.2.1 credentials endpoint: 3001, nothing kept."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import SecretStr

from core_client.ocpi.cpo.handling import Caller
from core_client.ocpi.cpo.peers import Peer, PeerStore, TokenKind
from core_client.ocpi.cpo.settings import CpoSettings
from core_client.ocpi.credentials import Handshake
from core_client.ocpi.errors import OcpiError
from core_client.ocpi.handling import Fault
from core_client.ocpi.models import Credentials
from core_client.ocpi.models.enums import ModuleID, Role
from core_client.ocpi.registration import new_token
from core_client.ocpi.transport import StatusCode

# what we need of an eMSP's platform: its credentials endpoint (the rest is used when listed)
REQUIRED = [(ModuleID.CREDENTIALS, None)]


class EmspRegistrations:
    """The CPO side of the handshake, for the eMSPs in ``peers``."""

    def __init__(self, settings: CpoSettings, peers: PeerStore) -> None:
        self.settings = settings
        self.peers = peers
        self.reader = Handshake(settings, store=None)  # type: ignore[arg-type]  # its role-free client/discover

    def credentials(self, token: str) -> Credentials:
        """Our credentials object with ``token``: our versions URL, our CPO role."""
        return Credentials(token=SecretStr(token), url=self.settings.versions_endpoint, roles=[self.settings.role()])

    def current(self, caller: Caller) -> Credentials:
        """GET: our credentials for this caller."""
        ours = caller.peer.token_c if caller.token is TokenKind.C else caller.peer.token_a
        return self.credentials(ours.get_secret_value() if ours else "")

    async def register(self, caller: Caller, theirs: Credentials) -> Credentials:
        """POST with token A: 405 when registered already (PUT renews)."""
        if caller.token is not TokenKind.A:
            raise Fault(405, StatusCode.CLIENT_ERROR, "already registered: PUT updates the credentials")
        return await self._accept(caller.peer, theirs)

    async def update(self, caller: Caller, theirs: Credentials) -> Credentials:
        """PUT with token C."""
        self._registered(caller)
        return await self._accept(caller.peer, theirs)

    def unregister(self, caller: Caller) -> None:
        """DELETE with token C: the eMSP is forgotten (a new token A registers it again)."""
        self._registered(caller)
        self.peers.remove(caller.peer.name)

    @staticmethod
    def _registered(caller: Caller) -> None:
        if caller.token is not TokenKind.C:
            raise Fault(405, StatusCode.CLIENT_ERROR, "not registered: POST registers with token A")

    async def _accept(self, peer: Peer, theirs: Credentials) -> Credentials:
        if not any(role.role in (Role.EMSP, Role.HUB) for role in theirs.roles):
            raise Fault(200, StatusCode.INVALID_PARAMETERS, "the credentials name no EMSP or HUB role")
        async with self.reader.client() as client:
            try:
                details = await self.reader.discover(
                    client, theirs.url, theirs.token.get_secret_value(), REQUIRED, who="the eMSP"
                )
            except OcpiError as error:
                raise OcpiError(f"cannot use the eMSP's API: {error}") from None
        token_c = new_token()
        registered = peer.model_copy(
            update={
                "token_a": None,
                "token_c": SecretStr(token_c),
                "token_b": theirs.token,
                "versions_url": theirs.url,
                "endpoints": details.endpoints,
                "roles": theirs.roles,
                "registered_at": datetime.now(timezone.utc),
            }
        )
        self.peers.save(registered)
        return self.credentials(token_c)
