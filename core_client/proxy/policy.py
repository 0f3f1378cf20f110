"""Proxy mode's decisions: whose answer goes back to the charge point, and how transaction ids are
rewritten between the two sides. Pure: no I/O, no clock (timestamps are passed in).

For each charge point -> CSMS CALL (every one is also forwarded to the CSMS, see core_client.proxy.upstream):

============================  ==================================  =============================================
CALL                          CSMS answered                       CSMS down, slow or CALLERROR on a chain tag
============================  ==================================  =============================================
Authorize, EV Network tag     the Core Client's answer (chain)    the Core Client's answer
StartTransaction, EVN tag     CSMS's transactionId, Core Client's the offline transactionId, Core Client's
                              idTagInfo                           idTagInfo
Authorize / Start, other tag  the CSMS's answer                   Accepted (or Invalid: ``offline_id_tags``),
                                                                  Start with the offline transactionId
BootNotification              the CSMS's answer                   Accepted, the Core Client's interval
StopTransaction               the CSMS's answer                   the Core Client's, idTagInfo as above
anything else                 the CSMS's answer (or CALLERROR)    the Core Client's own answer
============================  ==================================  =============================================

An EV Network tag is ``EVN<n>``, the tag a signing meter signs (:func:`core_client.sessions.machine.is_network_tag`),
or an RFID card linked to a payment mandate granted to this operator (the caller's ``chain_tag``, see
:meth:`core_client.sessions.service.SessionService.chain_tag`): the chain is the authority over it,
whatever the CSMS thinks of a tag it has never issued (or of a card it has issued).

Transaction ids: a StartTransaction answered while the CSMS could not be asked gets an *offline id*
(:data:`OFFLINE_ID_BASE` and up, far above a CSMS's counter). When the queued StartTransaction
reaches the CSMS, its transactionId is mapped to that offline id: later CALLs of the transaction are
rewritten to the CSMS's id on the way up (:func:`to_csms`), and the CSMS's CALLs naming its id are
rewritten to the offline id on the way down (:func:`to_charge_point`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from ocpp.messages import Call, CallError, CallResult
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus

from core_client.proxy.config import OfflineIdTags
from core_client.sessions.machine import is_network_tag

#: Transaction ids handed out while the CSMS is unreachable start here (int32-safe, above any CSMS counter).
OFFLINE_ID_BASE = 2_000_000_000
#: CALLs answered locally but not queued for the CSMS while it is down: they carry no record.
NOT_QUEUED = frozenset({Action.heartbeat})
#: Whether an idTag is the chain's (an EV Network tag or a linked card).
ChainTag = Callable[[str | None], bool]


class Source(str, Enum):
    """Whose answer to a CALL goes back to the charge point when the CSMS answers."""

    CSMS = "csms"
    CORE = "core"  # the Core Client's answer (the CSMS's is only recorded)
    MERGED = "merged"  # the CSMS's transactionId with the Core Client's idTagInfo


def chain_paid(payload: Mapping[str, Any], chain_tag: ChainTag = is_network_tag) -> bool:
    """Whether the CALL names an idTag of the chain's (a session paid on chain)."""
    return chain_tag(payload.get("idTag"))


def source(action: str, payload: Mapping[str, Any], chain_tag: ChainTag = is_network_tag) -> Source:
    """Whose answer goes back for ``action`` when the CSMS answers it."""
    if chain_paid(payload, chain_tag) and action == Action.authorize:
        return Source.CORE
    if chain_paid(payload, chain_tag) and action == Action.start_transaction:
        return Source.MERGED
    return Source.CSMS


def reply(
    call: Call,
    csms: CallResult | CallError | None,
    local: dict[str, Any],
    offline_transaction_id: int | None = None,
    offline_id_tags: OfflineIdTags = OfflineIdTags.ACCEPT,
    chain_tag: ChainTag = is_network_tag,
) -> CallResult | CallError:
    """The answer for the charge point's ``call``.

    ``csms``: the CSMS's answer, or None when it could not be asked (down, slow: the CALL is queued).
    ``local``: the Core Client's own CALLRESULT payload (camelCase, as on the wire).
    ``offline_transaction_id``: for a StartTransaction without a usable CSMS answer, the offline id.
    """
    chosen = source(call.action, call.payload, chain_tag)
    if csms is None or (chosen is Source.MERGED and isinstance(csms, CallError)):
        answer = offline_answer(call, local, offline_transaction_id, offline_id_tags, chain_tag)
        return CallResult(call.unique_id, answer)
    if chosen is Source.CORE:
        return CallResult(call.unique_id, local)
    if chosen is Source.MERGED:
        return CallResult(call.unique_id, {**local, "transactionId": csms.payload["transactionId"]})
    if isinstance(csms, CallError):
        return CallError(call.unique_id, csms.error_code, csms.error_description, csms.error_details)
    return CallResult(call.unique_id, csms.payload)


def offline_answer(
    call: Call,
    local: dict[str, Any],
    offline_transaction_id: int | None = None,
    offline_id_tags: OfflineIdTags = OfflineIdTags.ACCEPT,
    chain_tag: ChainTag = is_network_tag,
) -> dict[str, Any]:
    """What the charge point is told when the CSMS cannot be asked (see the module's table)."""
    action, payload = call.action, call.payload
    accepted = offline_id_tags is OfflineIdTags.ACCEPT
    status = {"status": AuthorizationStatus.accepted if accepted else AuthorizationStatus.invalid}
    if action == Action.boot_notification:
        return {**local, "status": RegistrationStatus.accepted}
    if action == Action.start_transaction:
        if offline_transaction_id is None:
            raise ValueError("a StartTransaction answered offline needs an offline transaction id")
        info = local.get("idTagInfo", status) if chain_paid(payload, chain_tag) else status
        return {"transactionId": offline_transaction_id, "idTagInfo": info}
    if chain_paid(payload, chain_tag):
        return local
    if action == Action.authorize or (action == Action.stop_transaction and "idTag" in payload):
        return {**local, "idTagInfo": status}
    return local


def to_csms(action: str, payload: dict[str, Any], csms_ids: Mapping[int, int]) -> dict[str, Any]:
    """``payload`` of a charge point's CALL with offline transaction ids replaced by the CSMS's."""
    if action in (Action.meter_values, Action.stop_transaction) and payload.get("transactionId") in csms_ids:
        return {**payload, "transactionId": csms_ids[payload["transactionId"]]}
    return payload


def to_charge_point(action: str, payload: dict[str, Any], local_ids: Mapping[int, int]) -> dict[str, Any]:
    """``payload`` of a CSMS's CALL with the CSMS's transaction ids replaced by the offline ids the
    charge point knows the transactions by."""
    if action == Action.remote_stop_transaction and payload.get("transactionId") in local_ids:
        return {**payload, "transactionId": local_ids[payload["transactionId"]]}
    profile = payload.get("csChargingProfiles")
    if (
        action == Action.set_charging_profile
        and isinstance(profile, dict)
        and profile.get("transactionId") in local_ids
    ):
        return {**payload, "csChargingProfiles": {**profile, "transactionId": local_ids[profile["transactionId"]]}}
    return payload
