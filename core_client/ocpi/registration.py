"""Our registration with the CSMS, kept like the operator's other secrets: one JSON file, mode 0600,
replaced atomically, tokens never logged (pydantic ``SecretStr``: a repr shows ``**********``).

It holds token B (ours: the CSMS calls us with it; during a re-registration also the next one), token C
(the CSMS's: we call it with it), the CSMS's versions URL, its 2.2.1 endpoints and roles, and why the
registration ended if it did (the CSMS unregistered us, or refused our token), for ``/health``.
Both the daemon's OCPI server and the ``core-client ocpi`` commands read it; :meth:`RegistrationStore.load`
re-reads the file only when it changed."""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_serializer

from core_client.ocpi.errors import NotRegistered, OcpiError
from core_client.ocpi.models import CredentialsRole, Endpoint
from core_client.ocpi.models.base import ci
from core_client.ocpi.models.enums import InterfaceRole, ModuleID, Role
from core_client.ocpi.transport import VERSION, Party


def new_token() -> str:
    """A fresh credentials token (43 URL-safe characters: within the 64 printable ASCII OCPI allows)."""
    return secrets.token_urlsafe(32)


class Registration(BaseModel):
    """What the credentials handshake left us with."""

    model_config = ConfigDict(extra="forbid")

    versions_url: str
    version: str = VERSION
    token_b: SecretStr | None = None  # ours; None once the registration ended
    token_b_next: SecretStr | None = None  # ours during a re-registration, until the CSMS confirms
    token_c: SecretStr | None = None  # the CSMS's; None while the handshake is under way or after it ended
    endpoints: list[Endpoint] = []
    roles: list[CredentialsRole] = []  # the CSMS's parties
    registered_at: datetime | None = None
    ended: str | None = None  # why this registration no longer works
    refused: str | None = None  # when the CSMS last refused our token C (HTTP 401), cleared by a new handshake

    @field_serializer("token_b", "token_b_next", "token_c")
    def _reveal(self, token: SecretStr | None) -> str | None:
        return None if token is None else token.get_secret_value()

    @property
    def registered(self) -> bool:
        return self.token_b is not None and self.token_c is not None and self.ended is None

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is one of our tokens B (constant-time compare)."""
        ours = [t.get_secret_value() for t in (self.token_b, self.token_b_next) if t is not None]
        return any(secrets.compare_digest(token.encode(), t.encode()) for t in ours)

    def their_token(self) -> str:
        """Token C, or NotRegistered."""
        if not self.registered or self.token_c is None:
            raise NotRegistered(self.ended or "not registered with the CSMS: run `core-client ocpi register`")
        return self.token_c.get_secret_value()

    def endpoint(self, module: ModuleID, role: InterfaceRole | None) -> str:
        """The CSMS's URL of ``module`` in ``role``, or OcpiError naming what is missing."""
        for endpoint in self.endpoints:
            if endpoint.identifier == module.value and (role is None or endpoint.role == role):
                return endpoint.url
        wanted = module.value + ("" if role is None else f" ({role.value})")
        raise OcpiError(f"the CSMS lists no {wanted} endpoint (core-client ocpi update re-reads its endpoints)")

    def cpo_parties(self) -> list[Party]:
        """The parties the CSMS pushes objects as (its CPO roles)."""
        return [Party(r.country_code, r.party_id) for r in self.roles if r.role == Role.CPO]

    def is_cpo(self, country_code: str, party_id: str) -> bool:
        """Whether the party is one of the CSMS's CPO roles; while the handshake is under way (no roles
        known yet: the CSMS may push before its POST answer reaches us) any party is."""
        return not self.roles or any(p.key() == (ci(country_code), ci(party_id)) for p in self.cpo_parties())


R = TypeVar("R", bound=BaseModel)


class RegistrationStore(Generic[R]):
    """The registration file (written 0600 through a temporary file and an atomic rename), holding a
    :class:`Registration` (the CPO side keeps its eMSPs in one the same way: ``model``)."""

    def __init__(self, path: Path, model: type[R] = Registration) -> None:  # type: ignore[assignment]
        self.path = path
        self.model = model
        self._cached: tuple[int, R | None] | None = None

    def load(self) -> R | None:
        """The registration, or None when there is none; cached until the file changes."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if self._cached is not None and self._cached[0] == stamp:
            return self._cached[1]
        try:
            registration = self.model.model_validate_json(self.path.read_bytes())
        except (OSError, ValidationError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not a registration file"
            raise OcpiError(f"OCPI registration file {self.path}: {reason}") from None
        self._cached = (stamp, registration)
        return registration

    def require(self) -> R:
        """The registration, or NotRegistered."""
        registration = self.load()
        if registration is None:
            raise NotRegistered("not registered with the CSMS: run `core-client ocpi register`")
        return registration

    def save(self, registration: R) -> None:
        """Write ``registration`` (mode 0600, atomically)."""
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(registration.model_dump_json(indent=2))
            os.replace(temporary, self.path)
        except OSError as error:
            raise OcpiError(f"cannot write the OCPI registration file {self.path}: {error.strerror}") from None
        self._cached = None

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._cached = None
