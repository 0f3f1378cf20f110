"""How a roaming eMSP's Token tapped at one of our charge points is decided (mod_tokens, WhitelistType and
"Real-time authorization"). Pure: no network, no chain, no clock.

- A Token we hold that is valid with whitelist ALWAYS is whitelisted: it starts (under its eMSP's mandate)
  without asking; one that is not valid with ALWAYS is refused (real-time authorization is not allowed).
- Whitelist ALLOWED, ALLOWED_OFFLINE or NEVER, or a uid we hold no Token of: the eMSP is asked in real time
  (POST {tokens}/{uid}/authorize?type=RFID with the LocationReferences of the charge point) and its
  AuthorizationInfo answers the charge point (ALLOWED: Accepted; BLOCKED: Blocked; EXPIRED: Expired;
  NO_CREDIT, NOT_ALLOWED: Invalid). 2.2.1: "If a Token is valid = false, when the whitelist field requires
  real-time authorization, the CPO SHALL do a real-time authorization".
- An ALLOWED answer whose ``location`` leaves out every EVSE of the charge point asked about: Invalid; one
  that leaves out some: the token may start at the others only (:func:`allowed_evses`).
- The eMSP does not answer within the charge point's response time (:func:`when_silent`): ALLOWED_OFFLINE
  ("when the CPO cannot get a response from the eMSP ... the CPO shall allow this Token") and ALLOWED ("it
  is allowed to whitelist the token") start if the Token we hold is valid; NEVER, an invalid Token, or one
  we do not hold: Invalid. (A Token its eMSP marked invalid is never started on the eMSP's money unasked.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ocpp.v16.enums import AuthorizationStatus as IdTagStatus

from core_client.ocpi.models import LocationReferences, Token
from core_client.ocpi.models.base import ci
from core_client.ocpi.models.enums import AllowedType, WhitelistType


class Route(str, Enum):
    """What a tap of the Token needs."""

    WHITELISTED = "whitelisted"  # start without asking the eMSP
    ASK = "ask"  # real-time authorization
    REFUSED = "refused"  # refuse without asking


@dataclass(frozen=True)
class Verdict:
    route: Route
    why: str


OCPP_STATUS = {
    AllowedType.ALLOWED: IdTagStatus.accepted,
    AllowedType.BLOCKED: IdTagStatus.blocked,
    AllowedType.EXPIRED: IdTagStatus.expired,
    AllowedType.NO_CREDIT: IdTagStatus.invalid,
    AllowedType.NOT_ALLOWED: IdTagStatus.invalid,
}
WHITELISTABLE = (WhitelistType.ALWAYS, WhitelistType.ALLOWED, WhitelistType.ALLOWED_OFFLINE)  # all but NEVER


def tap_route(token: Token | None) -> Verdict:
    """How a tap of ``token`` (None: we hold no Token of that uid) is decided."""
    if token is None:
        return Verdict(Route.ASK, "no Token of this uid is held: its eMSP is asked")
    if token.whitelist is WhitelistType.ALWAYS:
        if token.valid:
            return Verdict(Route.WHITELISTED, "valid, whitelist ALWAYS")
        return Verdict(Route.REFUSED, "not valid, whitelist ALWAYS (real-time authorization not allowed)")
    return Verdict(Route.ASK, f"whitelist {token.whitelist.value}: real-time authorization")


def when_silent(token: Token | None) -> IdTagStatus:
    """The answer to the charge point when the eMSP did not answer the real-time authorization in time."""
    if token is not None and token.valid and token.whitelist in WHITELISTABLE:
        return IdTagStatus.accepted
    return IdTagStatus.invalid


def ocpp_status(allowed: AllowedType) -> IdTagStatus:
    """The charge point's answer for the eMSP's AuthorizationInfo.allowed."""
    return OCPP_STATUS[allowed]


def allowed_evses(asked: LocationReferences, answered: LocationReferences | None) -> list[str]:
    """The EVSEs of ``asked`` where an ALLOWED AuthorizationInfo lets the token charge: its ``location``
    (2.2.1: "Only the EVSEs the EV driver is allowed to charge at are returned"); all when it names none or
    no EVSEs, none when it names another Location."""
    if answered is None:
        return list(asked.evse_uids or [])
    if ci(answered.location_id) != ci(asked.location_id):
        return []
    if not answered.evse_uids:
        return list(asked.evse_uids or [])
    allowed = {ci(uid) for uid in answered.evse_uids}
    return [uid for uid in asked.evse_uids or [] if ci(uid) in allowed]
