"""A roaming eMSP's session as the OCPI 2.2.1 Session and CDR we push to it (pure: no network, no chain).

Energy in kWh from the OCPP meter (Wh / 1000); costs from the chain (gross, VAT included; ``excl_vat`` the
gross divided by 1 + VAT when one is configured), in ``currency`` (one token = one unit). The CDR names the
transaction that settled the session on chain in ``remark`` (2.2.1 has no field for it: ``remark`` is its
free text for the receiver; ``invoice_reference_id`` is 39 characters, too short for a transaction hash)
and carries the meter's signed records as ``signed_data`` (OCMF, each whole record Base64 in
``signed_data``, its payload in ``plain_data``) when the meter signed."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal

from core_client.ocpi.cpo.catalog import Site
from core_client.ocpi.cpo.roaming import RoamingSession
from core_client.ocpi.models import CDR, CdrDimension, CdrLocation, ChargingPeriod, Price, Session, SignedData
from core_client.ocpi.models import SignedValue as OcpiSignedValue
from core_client.ocpi.models.enums import CdrDimensionType, SessionStatus
from core_client.ocpi.transport import Party
from core_client.sessions.machine import SessionRecord
from core_client.sessions.metering import BEGIN, END

FOUR_DECIMALS = Decimal("0.0001")
NATURES = {BEGIN: "Start", END: "End"}


@dataclass(frozen=True)
class Money:
    """How chain amounts become OCPI prices."""

    currency: str
    decimals: int
    vat_percent: Decimal | None

    def price(self, units: int) -> Price:
        gross = Decimal(units).scaleb(-self.decimals)
        net = gross if self.vat_percent is None else gross * 100 / (100 + self.vat_percent)
        return Price(excl_vat=net.quantize(FOUR_DECIMALS, ROUND_HALF_EVEN), incl_vat=gross)


def kwh(record: SessionRecord | None) -> Decimal:
    return Decimal(0) if record is None else Decimal(record.energy_wh) / 1000


def _at(stamp: float | None, otherwise: datetime) -> datetime:
    return otherwise if stamp is None else datetime.fromtimestamp(stamp, timezone.utc).replace(microsecond=0)


def session_object(
    roaming: RoamingSession, record: SessionRecord | None, us: Party, currency: str, now: datetime
) -> Session:
    """The Session: ACTIVE while charging, COMPLETED once the charge point stopped it; INVALID (never billed)
    when its start or its open on chain was refused."""
    started = _at(record.started_at if record else None, roaming.requested_at)
    stopped = record is not None and record.meter_stop is not None
    status = SessionStatus.COMPLETED if stopped else SessionStatus.ACTIVE
    if roaming.invalid is not None:
        status = SessionStatus.INVALID
    return Session(
        country_code=us.country_code,
        party_id=us.party_id,
        id=roaming.id,
        start_date_time=started,
        end_date_time=_at(record.stopped_at, now) if stopped and record else (now if roaming.invalid else None),
        kwh=kwh(record),
        cdr_token=roaming.token,
        auth_method=roaming.auth_method,
        authorization_reference=roaming.authorization_reference,
        location_id=roaming.location_id,
        evse_uid=roaming.evse_uid,
        connector_id=roaming.connector_id,
        currency=currency,
        status=status,
        last_updated=now,
    )


def signed_data(records: dict[str, str]) -> SignedData | None:
    """The meter's signed OCMF records of the session (None: it signed none)."""
    values = [
        OcpiSignedValue(
            nature=nature,
            plain_data=record.split("|")[1][:512] if record.count("|") >= 2 else "",
            signed_data=base64.b64encode(record.encode()).decode(),
        )
        for context, nature in NATURES.items()
        if (record := records.get(context))
    ]
    return SignedData(encoding_method="OCMF", signed_values=values) if values else None


def cdr_object(
    roaming: RoamingSession,
    record: SessionRecord,
    settle_tx: str,
    site: Site,
    station_id: int,
    us: Party,
    money: Money,
    meter_records: dict[str, str],
    now: datetime,
) -> CDR:
    """The CDR of a session settled on chain in ``settle_tx``."""
    session = session_object(roaming, record, us, money.currency, now)
    end = session.end_date_time or now
    energy = kwh(record)
    return CDR(
        country_code=us.country_code,
        party_id=us.party_id,
        id=roaming.id,
        start_date_time=session.start_date_time,
        end_date_time=end,
        session_id=roaming.id,
        cdr_token=roaming.token,
        auth_method=roaming.auth_method,
        authorization_reference=roaming.authorization_reference,
        cdr_location=CdrLocation(
            **site.model_dump(include={"name", "address", "city", "postal_code", "country"}),
            coordinates={"latitude": site.latitude, "longitude": site.longitude},
            id=roaming.location_id,
            evse_uid=roaming.evse_uid,
            evse_id=f"{us.country_code}*{us.party_id}*E{station_id}*{roaming.connector}",
            connector_id=roaming.connector_id,
            connector_standard=site.standard,
            connector_format=site.format,
            connector_power_type=site.power_type,
        ),
        currency=money.currency,
        charging_periods=[
            ChargingPeriod(
                start_date_time=session.start_date_time,
                dimensions=[CdrDimension(type=CdrDimensionType.ENERGY, volume=energy)],
                tariff_id=roaming.location_id,
            )
        ],
        signed_data=signed_data(meter_records),
        total_cost=money.price(record.cost or 0),
        total_energy=energy,
        total_time=(Decimal((end - session.start_date_time).total_seconds()) / 3600).quantize(FOUR_DECIMALS),
        remark=f"settled on chain in transaction {settle_tx}",
        last_updated=now,
    )
