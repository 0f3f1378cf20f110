"""OCPI 2.2.1 objects as pydantic models, each property checked as the specification's tables say
(cardinality, type, length, enum, DateTime format). Parse received JSON with
``json.loads(text, parse_float=Decimal)`` and ``Model.model_validate``; write with ``obj.to_json()``.
The enums are in :mod:`core_client.ocpi.models.enums`."""

from core_client.ocpi.models.base import DisplayText, OcpiModel, Price, ci, format_datetime, parse_datetime
from core_client.ocpi.models.locations import EVSE, BusinessDetails, Connector, GeoLocation, Image, Location
from core_client.ocpi.models.platform import Credentials, CredentialsRole, Endpoint, Version, VersionDetails
from core_client.ocpi.models.sessions import (
    CDR,
    CdrDimension,
    CdrLocation,
    CdrToken,
    ChargingPeriod,
    Session,
    SignedData,
    SignedValue,
)
from core_client.ocpi.models.tariffs import PriceComponent, Tariff, TariffElement, TariffRestrictions
from core_client.ocpi.models.tokens import (
    AuthorizationInfo,
    CommandResponse,
    CommandResult,
    EnergyContract,
    LocationReferences,
    StartSession,
    StopSession,
    Token,
)

__all__ = [
    "CDR",
    "EVSE",
    "AuthorizationInfo",
    "BusinessDetails",
    "CdrDimension",
    "CdrLocation",
    "CdrToken",
    "ChargingPeriod",
    "CommandResponse",
    "CommandResult",
    "Connector",
    "Credentials",
    "CredentialsRole",
    "DisplayText",
    "Endpoint",
    "EnergyContract",
    "GeoLocation",
    "Image",
    "Location",
    "LocationReferences",
    "OcpiModel",
    "Price",
    "PriceComponent",
    "Session",
    "SignedData",
    "SignedValue",
    "StartSession",
    "StopSession",
    "Tariff",
    "TariffElement",
    "TariffRestrictions",
    "Token",
    "Version",
    "VersionDetails",
    "ci",
    "format_datetime",
    "parse_datetime",
]
