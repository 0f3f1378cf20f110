"""The eMSPs and hubs registered with us as their CPO, kept in one file like the operator's other secrets
(mode 0600, replaced atomically, tokens never logged: pydantic ``SecretStr``).

Each :class:`Peer` starts as a token A we issued (``core-client ocpi issue-token NAME``); the eMSP calls
our versions, details and credentials with it, POSTs its credentials (its token B, its versions URL, its
roles) and gets our token C, with which it calls our modules from then on; token A is then void. A PUT
renews both tokens; a DELETE ends the registration."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr, field_serializer

from core_client.ocpi.errors import OcpiError
from core_client.ocpi.models import CredentialsRole, Endpoint, VersionDetails
from core_client.ocpi.models.base import ci
from core_client.ocpi.models.enums import InterfaceRole, ModuleID, Role
from core_client.ocpi.registration import RegistrationStore, new_token
from core_client.ocpi.transport import VERSION, Party
from ev_network.errors import EVNetworkError
from ev_network.mandates import parse_grant


class TokenKind(str, Enum):
    """Which of our tokens a peer presented."""

    A = "A"  # for the registration only: versions, details, credentials POST
    C = "C"  # after the handshake: every module


class Peer(BaseModel):
    """One eMSP (or hub) of ours."""

    model_config = ConfigDict(extra="forbid")

    name: str  # the operator's label, given at issue-token
    issued_at: datetime
    token_a: SecretStr | None = None  # ours, for its registration; None once used
    token_c: SecretStr | None = None  # ours after the handshake: it calls us with it
    token_b: SecretStr | None = None  # its own: we call it with it
    versions_url: str | None = None
    endpoints: list[Endpoint] = []
    roles: list[CredentialsRole] = []  # its parties (eMSP roles)
    registered_at: datetime | None = None
    mandate_id: int | None = None  # its payment mandate with us on chain (none: its sessions are refused)
    mandate_salt: SecretStr | None = None  # the salt of its tokens' references under that mandate (hex)

    @field_serializer("token_a", "token_c", "token_b", "mandate_salt")
    def _reveal(self, token: SecretStr | None) -> str | None:
        return None if token is None else token.get_secret_value()

    @property
    def registered(self) -> bool:
        return self.token_b is not None and self.token_c is not None

    def presented(self, token: str) -> TokenKind | None:
        """Which of our tokens ``token`` is (constant-time compare), if any."""
        for kind, ours in ((TokenKind.C, self.token_c), (TokenKind.A, self.token_a)):
            if ours is not None and secrets.compare_digest(token.encode(), ours.get_secret_value().encode()):
                return kind
        return None

    def endpoint(self, module: ModuleID, role: InterfaceRole | None) -> str | None:
        """Its URL of ``module`` in ``role``, if it lists one."""
        return VersionDetails(version=VERSION, endpoints=self.endpoints).endpoint(module, role)

    def parties(self) -> list[Party]:
        """The parties it acts for (its eMSP roles)."""
        return [Party(r.country_code, r.party_id) for r in self.roles if r.role in (Role.EMSP, Role.HUB)]

    def owns(self, party: Party) -> bool:
        return any(p.key() == (ci(party.country_code), ci(party.party_id)) for p in self.parties())

    def their_token(self) -> str:
        if self.token_b is None:
            raise OcpiError(f"eMSP {self.name} is not registered")
        return self.token_b.get_secret_value()


class Peers(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    peers: list[Peer] = []


class PeerStore:
    """Our eMSPs, in the file at ``path``."""

    def __init__(self, path: Path) -> None:
        self.file: RegistrationStore[Peers] = RegistrationStore(path, Peers)

    def all(self) -> list[Peer]:
        loaded = self.file.load()
        return [] if loaded is None else loaded.peers

    def issue(self, name: str) -> str:
        """A new token A for the eMSP ``name`` (replacing one not yet used); returns it (shown once)."""
        if not name.strip():
            raise OcpiError("an eMSP needs a name")
        peers = [p for p in self.all() if p.name != name or p.registered]
        if any(p.name == name for p in peers):
            raise OcpiError(f"eMSP {name} is registered already: it renews its credentials itself (PUT)")
        token = new_token()
        peers.append(Peer(name=name, issued_at=datetime.now(timezone.utc), token_a=SecretStr(token)))
        self.file.save(Peers(peers=peers))
        return token

    def authenticate(self, token: str) -> tuple[Peer, TokenKind] | None:
        """The peer ``token`` belongs to and which token it is."""
        for peer in self.all():
            kind = peer.presented(token)
            if kind is not None:
                return peer, kind
        return None

    def save(self, peer: Peer) -> None:
        """Store ``peer`` (replacing the one of the same name)."""
        others = [p for p in self.all() if p.name != peer.name]
        self.file.save(Peers(peers=[*others, peer]))

    def link_mandate(self, name: str, grant: str) -> Peer:
        """Link the eMSP ``name`` to its payment mandate: its grant ``evcard:<mandate id>:<salt hex>``."""
        try:
            mandate_id, salt = parse_grant(grant)
        except EVNetworkError as error:
            raise OcpiError(str(error)) from None
        peer = next((p for p in self.all() if p.name == name), None)
        if peer is None:
            raise OcpiError(f"no eMSP {name} (core-client ocpi emsps lists them)")
        linked = peer.model_copy(update={"mandate_id": mandate_id, "mandate_salt": SecretStr(salt.hex())})
        self.save(linked)
        return linked

    def remove(self, name: str) -> bool:
        """Forget the eMSP ``name``; whether there was one."""
        peers = self.all()
        kept = [p for p in peers if p.name != name]
        self.file.save(Peers(peers=kept))
        return len(kept) != len(peers)
