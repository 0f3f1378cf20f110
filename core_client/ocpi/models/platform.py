"""Configuration module objects (credentials.asciidoc, version_information_endpoint.asciidoc):
Credentials, CredentialsRole, Version, VersionDetails, Endpoint."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, StringConstraints, field_serializer, model_validator

from core_client.ocpi.models.base import URL, CountryCode, OcpiModel, PartyId, ci
from core_client.ocpi.models.enums import InterfaceRole, ModuleID, Role, VersionNumber
from core_client.ocpi.models.locations import BusinessDetails

TOKEN = re.compile(r"[\x21-\x7E]{1,64}")  # printable non-whitespace ASCII, at most 64 characters


def check_token(value: Any) -> SecretStr:
    """A credentials token as the Credentials object requires it, kept secret (masked repr)."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(text, str) or not TOKEN.fullmatch(text):
        raise ValueError("a credentials token is 1-64 printable non-whitespace ASCII characters")
    return SecretStr(text)


CredentialsToken = Annotated[SecretStr, BeforeValidator(check_token)]


class CredentialsRole(OcpiModel):
    role: Role
    business_details: BusinessDetails
    party_id: PartyId
    country_code: CountryCode

    def party(self) -> tuple[str, str]:
        """(country code, party id) in their case-insensitive form."""
        return ci(self.country_code), ci(self.party_id)


class Credentials(OcpiModel):
    """The token is a :class:`~pydantic.SecretStr`: its repr is masked; :meth:`to_json` writes it."""

    token: CredentialsToken
    url: URL
    roles: Annotated[list[CredentialsRole], Field(min_length=1)]

    @field_serializer("token", when_used="json")
    def _token(self, token: SecretStr) -> str:
        return token.get_secret_value()

    @model_validator(mode="after")
    def _unique_roles(self) -> Credentials:
        keys = [(r.role, *r.party()) for r in self.roles]
        if len(set(keys)) != len(keys):
            raise ValueError("every role needs a unique combination of role, party_id and country_code")
        return self


class Version(OcpiModel):
    version: Annotated[str, StringConstraints(max_length=10)]  # a VersionNumber; later versions may appear
    url: URL


class Endpoint(OcpiModel):
    identifier: Annotated[str, StringConstraints(min_length=1, max_length=50)]  # a ModuleID, or a custom one
    role: InterfaceRole
    url: URL


class VersionDetails(OcpiModel):
    version: VersionNumber
    endpoints: Annotated[list[Endpoint], Field(min_length=1)]

    def endpoint(self, module: ModuleID, role: InterfaceRole | None) -> str | None:
        """The URL of ``module``'s interface in ``role`` (any role for credentials), if listed."""
        for endpoint in self.endpoints:
            if endpoint.identifier == module.value and (role is None or endpoint.role == role):
                return endpoint.url
        return None
