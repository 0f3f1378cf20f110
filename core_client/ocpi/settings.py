"""The ``[ocpi]`` section of the Core Client's config: the CSMS to connect to as an eMSP, our party, and
where our OCPI endpoints listen. See ``examples/core-client.toml`` and ``docs/operations.md``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from core_client.ocpi.errors import OcpiError
from core_client.ocpi.models import BusinessDetails, CredentialsRole
from core_client.ocpi.models.enums import Role
from core_client.ocpi.transport import VERSION, Party, TokenEncoding


def _http_url(value: str) -> str:
    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


class PartySettings(BaseModel):
    """Our OCPI party and our endpoints, whichever role we play (:class:`OcpiSettings` as the eMSP,
    :class:`core_client.ocpi.cpo.settings.CpoSettings` as the CPO)."""

    model_config = ConfigDict(extra="forbid")
    ROLE: ClassVar[Role] = Role.EMSP

    country_code: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]  # our party (ISO-3166 alpha-2)
    party_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{3}$")]  # our party id (ISO-15118)
    business_name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    business_website: str | None = None
    host: str = "127.0.0.1"  # our OCPI endpoints listen here
    port: int = Field(9004, ge=0, le=65535)
    public_url: str  # where the CSMS reaches them, e.g. https://emsp.example.com/ocpi (a path is kept)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "EUR"  # what one chain token is worth
    token_encoding: TokenEncoding = TokenEncoding.BASE64  # "plain" only for a pre-2.2.1 peer
    request_timeout_s: float = Field(30, gt=0)  # one request to the CSMS, retries included
    page_limit: int = Field(100, ge=1, le=1000)  # most objects we return in one page

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        return _http_url(value)

    @property
    def party(self) -> Party:
        return Party(self.country_code.upper(), self.party_id.upper())

    @property
    def base_path(self) -> str:
        """The URL path our endpoints are served under (that of ``public_url``)."""
        return urlsplit(self.public_url).path.rstrip("/")

    def url(self, *segments: str) -> str:
        """The public URL of one of our endpoints: ``public_url/segment/...``."""
        return "/".join([self.public_url, *segments])

    @property
    def versions_endpoint(self) -> str:
        return self.url("versions")

    @property
    def details_endpoint(self) -> str:
        return self.url(VERSION)

    def role(self) -> CredentialsRole:
        """Our role in the credentials object (``ROLE``) with our business details."""
        details = BusinessDetails(name=self.business_name, website=self.business_website)
        return CredentialsRole(
            role=self.ROLE, business_details=details, party_id=self.party.party_id, country_code=self.party.country_code
        )


class OcpiSettings(PartySettings):
    """``[ocpi]``: the OCPI bridge to the CPO's CSMS (the Core Client as one more eMSP)."""

    versions_url: str  # the CSMS's OCPI versions endpoint, given with token A
    # the CSMS's registration token (only `core-client ocpi register` uses it): from the environment variable
    # named token_a_env, else from token_a_file (mode 0600), else token_a (in this file)
    token_a_env: str = "EVN_OCPI_TOKEN_A"
    token_a_file: Path | None = None
    token_a: SecretStr | None = None
    pull_interval_s: float = Field(300, gt=0)  # the daemon pulls the CDRs the CSMS could not push this often
    session_pull_after_s: float = Field(20, gt=0)  # no Session pushed this long after an accepted start: pull it
    registration_file: Path | None = None  # default: next to a SQLite database, <database>.ocpi-registration

    @field_validator("versions_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)

    def registration_token(self, environ: Mapping[str, str] | None = None) -> str:
        """Token A: the ``token_a_env`` variable of ``environ`` (default: the process's), else the content of
        ``token_a_file`` (refused if others may read it), else ``token_a``; OcpiError saying where to put it."""
        from_env = (os.environ if environ is None else environ).get(self.token_a_env, "").strip()
        if from_env:
            return from_env
        if self.token_a_file is not None:
            return _secret_file(self.token_a_file, "token_a_file")
        if self.token_a is not None and self.token_a.get_secret_value():
            return self.token_a.get_secret_value()
        raise OcpiError(
            f"no token A: set {self.token_a_env}, token_a_file (a file of mode 0600) or token_a in [ocpi] to the "
            "registration token the CSMS's operator gave you"
        )

    def registration_path(self, database: Path | str) -> Path:
        """Where the tokens are kept (a file, mode 0600): ``registration_file`` (which a postgresql://
        database needs, checked at load), else beside the SQLite database."""
        if self.registration_file is not None:
            return self.registration_file
        path = Path(database)
        return path.with_name(path.name + ".ocpi-registration")


def _secret_file(path: Path, what: str) -> str:
    """The secret held in ``path`` (stripped); OcpiError if it is missing, empty or readable by others."""
    try:
        mode = path.stat().st_mode
        secret = path.read_text().strip()
    except OSError as error:
        raise OcpiError(f"{what} {path}: {error.strerror or error}") from None
    if mode & 0o077:
        raise OcpiError(f"{what} {path} may be read by others (mode {mode & 0o777:04o}): chmod 600 {path}")
    if not secret:
        raise OcpiError(f"{what} {path} is empty")
    return secret
