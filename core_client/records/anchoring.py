"""The daemon's side of the transaction record (:mod:`core_client.records.log`): the log in the daemon's
database, bound to the deployment's ``RecordAnchor``; the anchoring loop, which sends with the
daemon's own :class:`~ev_network.tx.TxSender` (shared nonces with the chain worker); the /health part.

The station links write the records (``record_start`` in the StartTransaction handler, where the
transaction id is decided; ``record_stop`` once the StopTransaction is answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from web3 import Web3

from core_client.config import Settings
from core_client.records.log import TransactionLog
from core_client.storage.database import Database
from ev_network.deployment import Deployment
from ev_network.records import RecordAnchor
from ev_network.tx import TxSender

log = logging.getLogger("core_client.records")
ANCHOR_CHECK_EVERY_S = 2.0  # how often the policy (anchor_every_records, anchor_interval_s) is asked


def transaction_log(
    settings: Settings, deployment: Deployment, w3: Web3, database: Database | None = None
) -> TransactionLog | None:
    """The record of every OCPP transaction, in the Core Client's database (``database``: the store's
    connection to it, which the store's thread then writes in its own transactions: a second SQLite
    connection would wait for the first); None (with a warning) for a deployment from before RecordAnchor."""
    if deployment.record_anchor is None:
        log.warning(
            "the deployment %s has no record_anchor: transactions are not recorded (deploy again to record them)",
            settings.deployment_file,
        )
        return None
    return TransactionLog(
        settings.database if database is None else database,
        RecordAnchor(w3, deployment.record_anchor),
        anchor_every=settings.anchor_every_records,
        anchor_interval_s=settings.anchor_interval_s,
    )


async def anchor_loop(records: TransactionLog, sender: TxSender, stopping: asyncio.Event) -> None:
    """Anchor the waiting records whenever the policy says so, until ``stopping`` is set (an anchor in
    flight then completes first). ``anchor_due`` never raises: outages are logged and retried."""
    while not stopping.is_set():
        await records.anchor_due(sender)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stopping.wait(), ANCHOR_CHECK_EVERY_S)


def records_health(records: TransactionLog | None) -> dict[str, int] | None:
    """The transaction record in /health: records logged, anchored, waiting for the next anchor."""
    if records is None:
        return None
    logged, anchored = len(records), records.anchored_until()
    return {"logged": logged, "anchored": anchored, "waiting": logged - anchored}
