"""Queued jobs as contract calls: the escrow's ``start`` / ``reject`` / ``refundActive`` / ``settle`` / ``settleSigned`` (or their
batch forms; a settle with the end time of a CSMS's CDR: their ``...At`` forms) and a card's ``openSession`` under its
payment mandate, through the ``ev_network`` wrappers."""

from __future__ import annotations

from typing import Any

from core_client.sessions.jobs import CardOpenArgs, Job, JobKind, SignedSettleArgs
from ev_network import ocmf
from ev_network.contracts import CancelReason, Escrow
from ev_network.errors import EVNetworkError
from ev_network.mandates import Mandates


def submit(escrow: Escrow, mandates: Mandates | None, jobs: list[Job]) -> Any:
    """Send the call of ``jobs`` (all of one kind; several: its batch form) without waiting; the tx hash."""
    kind, ids = jobs[0].kind, [j.session_id for j in jobs]
    args: list[Any] = [j.args for j in jobs]
    if kind is JobKind.OPEN_CARD:
        return open_card(mandates, args[0])
    if kind is JobKind.START:
        if len(jobs) > 1:
            return escrow.start_batch(ids, [a.transaction_id for a in args], [a.meter_start for a in args], wait=False)
        return escrow.start(ids[0], args[0].transaction_id, args[0].meter_start, wait=False)
    if kind is JobKind.REJECT:
        return escrow.reject(ids[0], CancelReason(args[0].reason), wait=False)
    if kind is JobKind.REFUND:  # a held session the operator rejected: its whole deposit back
        return escrow.refund_active(ids[0], wait=False)
    if kind is JobKind.SETTLE_SIGNED:
        settlements = [settlement_of(j.session_id, a) for j, a in zip(jobs, args, strict=True)]
        if len(jobs) > 1:
            return escrow.settle_signed_batch(settlements, wait=False)
        if args[0].ended_at is not None:
            end = settleable_ends(escrow, ids, [args[0].ended_at])[0]
            return escrow.settle_signed_at(settlements[0], end, wait=False)
        return escrow.settle_signed(settlements[0], wait=False)
    stops = [a.meter_stop for a in args]
    if args[0].ended_at is not None:  # settleAt: the time fee until the end the CSMS's CDR gives
        ends = settleable_ends(escrow, ids, [a.ended_at for a in args])
        if len(jobs) > 1:
            return escrow.settle_batch_at(ids, stops, ends, wait=False)
        return escrow.settle_at(ids[0], stops[0], ends[0], wait=False)
    if len(jobs) > 1:
        return escrow.settle_batch(ids, stops, wait=False)
    return escrow.settle(ids[0], stops[0], wait=False)


def settle_groups(jobs: list[Job]) -> list[list[Job]]:
    """Ready settles grouped by the call that takes them together: settleBatch, settleBatchAt and
    settleSignedBatch; a signed settle with an end time (settleSignedAt) goes alone."""
    plain = [j for j in jobs if j.kind is JobKind.SETTLE]
    signed = [j for j in jobs if j.kind is JobKind.SETTLE_SIGNED]
    return [
        [j for j in plain if j.args.ended_at is None],
        [j for j in plain if j.args.ended_at is not None],
        [j for j in signed if j.args.ended_at is None],
        *([j] for j in signed if j.args.ended_at is not None),
    ]


def settleable_ends(escrow: Escrow, session_ids: list[int], ended_at: list[int]) -> list[int]:
    """Each ``ended_at`` within what settleAt takes: from its session's start on chain (its start block, later
    than the charge's start) to the time of the block the node is building (the settle lands in it or a later
    one; the latest block may be minutes old on a quiet chain). Two node requests whatever the batch's size:
    the sessions in one JSON-RPC batch, then the pending block."""
    sessions = escrow.get_sessions(session_ids)
    failed = next((s for s in sessions if isinstance(s, EVNetworkError)), None)
    if failed is not None:
        raise failed
    building = escrow.w3.eth.get_block("pending")["timestamp"]
    return [min(max(end, s.since), building) for s, end in zip(sessions, ended_at, strict=True)]


def open_card(mandates: Mandates | None, a: CardOpenArgs) -> Any:
    """Send a card's ``openSession`` under its mandate; the tx hash."""
    if mandates is None:
        raise EVNetworkError("a card's open needs the payment mandates contract (deployment payment_mandates)")
    ref = bytes.fromhex(a.token_ref)
    return mandates.open_session(
        a.mandate_id, ref, a.station_id, a.connector, a.deposit, a.transaction_id, a.meter_start, wait=False
    )


def settlement_of(session_id: int, args: SignedSettleArgs) -> tuple:
    """The escrow's SignedSettlement of a signed settle (its records were checked when it was queued)."""
    begin = ocmf.parse(args.begin) if args.begin is not None else None  # None: End holds both
    return ocmf.signed_settlement(session_id, begin, ocmf.parse(args.end), bytes.fromhex(args.meter_key))
