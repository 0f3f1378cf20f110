"""Tokens and Commands module objects (mod_tokens.asciidoc, mod_commands.asciidoc): Token,
AuthorizationInfo, LocationReferences; StartSession, StopSession, CommandResponse, CommandResult."""

from __future__ import annotations

from pydantic import model_validator

from core_client.ocpi.models.base import (
    URL,
    Bool,
    CiString,
    CountryCode,
    DateTime,
    DisplayText,
    Int,
    OcpiModel,
    PartyId,
    String,
)
from core_client.ocpi.models.enums import (
    AllowedType,
    CommandResponseType,
    CommandResultType,
    ProfileType,
    TokenType,
    WhitelistType,
)


class EnergyContract(OcpiModel):
    supplier_name: String(64)
    contract_id: String(64) | None = None


class Token(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    uid: CiString(36)
    type: TokenType
    contract_id: CiString(36)
    visual_number: String(64) | None = None
    issuer: String(64)
    group_id: CiString(36) | None = None
    valid: Bool
    whitelist: WhitelistType
    language: String(2) | None = None
    default_profile_type: ProfileType | None = None
    energy_contract: EnergyContract | None = None
    last_updated: DateTime


class LocationReferences(OcpiModel):
    location_id: CiString(36)
    evse_uids: list[CiString(36)] | None = None


class AuthorizationInfo(OcpiModel):
    allowed: AllowedType
    token: Token
    location: LocationReferences | None = None
    authorization_reference: CiString(36) | None = None
    info: DisplayText | None = None


class StartSession(OcpiModel):
    response_url: URL
    token: Token
    location_id: CiString(36)
    evse_uid: CiString(36) | None = None
    connector_id: CiString(36) | None = None
    authorization_reference: CiString(36) | None = None

    @model_validator(mode="after")
    def _connector_needs_evse(self) -> StartSession:
        if self.connector_id is not None and self.evse_uid is None:
            raise ValueError("evse_uid is required when connector_id is set")
        return self


class StopSession(OcpiModel):
    response_url: URL
    session_id: CiString(36)


class CommandResponse(OcpiModel):
    result: CommandResponseType
    timeout: Int  # seconds within which the CommandResult should come
    message: list[DisplayText] | None = None


class CommandResult(OcpiModel):
    result: CommandResultType
    message: list[DisplayText] | None = None
