"""Sessions and CDRs module objects (mod_sessions.asciidoc, mod_cdrs.asciidoc): Session, CDR and the
parts they share (CdrToken, ChargingPeriod, CdrDimension), CdrLocation, SignedData / SignedValue."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from core_client.ocpi.models.base import (
    Bool,
    CiString,
    CountryCode,
    DateTime,
    Int,
    Number,
    OcpiModel,
    PartyId,
    Price,
    String,
)
from core_client.ocpi.models.enums import (
    AuthMethod,
    CdrDimensionType,
    ConnectorFormat,
    ConnectorType,
    PowerType,
    SessionStatus,
    TokenType,
)
from core_client.ocpi.models.locations import Place
from core_client.ocpi.models.tariffs import Tariff


class CdrToken(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    uid: CiString(36)
    type: TokenType
    contract_id: CiString(36)


class CdrDimension(OcpiModel):
    type: CdrDimensionType
    volume: Number


class ChargingPeriod(OcpiModel):
    start_date_time: DateTime
    dimensions: Annotated[list[CdrDimension], Field(min_length=1)]
    tariff_id: CiString(36) | None = None


class Session(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: CiString(36)
    start_date_time: DateTime
    end_date_time: DateTime | None = None
    kwh: Number
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString(36) | None = None
    location_id: CiString(36)
    evse_uid: CiString(36)
    connector_id: CiString(36)
    meter_id: String(255) | None = None
    currency: String(3)
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Price | None = None
    status: SessionStatus
    last_updated: DateTime


class CdrLocation(Place):
    id: CiString(36)
    evse_uid: CiString(36)
    evse_id: CiString(48)
    connector_id: CiString(36)
    connector_standard: ConnectorType
    connector_format: ConnectorFormat
    connector_power_type: PowerType


class SignedValue(OcpiModel):
    nature: CiString(32)  # Start, End, Intermediate
    plain_data: String(512)
    signed_data: String(5000)


class SignedData(OcpiModel):
    encoding_method: CiString(36)  # e.g. OCMF
    encoding_method_version: Int | None = None
    public_key: String(512) | None = None
    signed_values: Annotated[list[SignedValue], Field(min_length=1)]
    url: String(512) | None = None


class CDR(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: CiString(39)
    start_date_time: DateTime
    end_date_time: DateTime
    session_id: CiString(36) | None = None
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString(36) | None = None
    cdr_location: CdrLocation
    meter_id: String(255) | None = None
    currency: String(3)
    tariffs: list[Tariff] | None = None
    charging_periods: Annotated[list[ChargingPeriod], Field(min_length=1)]
    signed_data: SignedData | None = None
    total_cost: Price
    total_fixed_cost: Price | None = None
    total_energy: Number
    total_energy_cost: Price | None = None
    total_time: Number  # hours, charging and not charging
    total_time_cost: Price | None = None
    total_parking_time: Number | None = None  # hours not charging
    total_parking_cost: Price | None = None
    total_reservation_cost: Price | None = None
    remark: String(255) | None = None
    invoice_reference_id: CiString(39) | None = None
    credit: Bool | None = None
    credit_reference_id: CiString(39) | None = None
    home_charging_compensation: Bool | None = None
    last_updated: DateTime

    @model_validator(mode="after")
    def _credit_names_its_cdr(self) -> CDR:
        if self.credit and not self.credit_reference_id:
            raise ValueError("a credit CDR (credit: true) needs credit_reference_id")
        return self
