"""The daemon's /health document: role, charge points, the job queue, the chain, sessions by state, the
failed and held sessions, and each part's own report (records, upstream, OCPI, cards, meters)."""

from __future__ import annotations

from typing import Any

from core_client.chain.watcher import ChainWorker, EventWatcher
from core_client.records.anchoring import records_health
from core_client.records.log import TransactionLog
from core_client.sessions.jobs import OPEN, JobStatus
from core_client.sessions.machine import SessionRecord, State
from core_client.sessions.service import SessionService
from core_client.storage.store import Store
from ev_network.session_ids import hex_session_id

FAILED_SHOWN = 20  # the latest failed sessions listed in /health


def serving(health: dict[str, Any] | None) -> bool:
    """Whether a /health document (None: no answer) says the daemon has taken its part: a standby, or a
    leader whose OCPP port is open. Before that its role is "starting"."""
    return health is not None and health.get("role") != "starting"


def service_report(store: Store, service: SessionService) -> dict[str, Any]:
    """The session service's part of /health: its charge points, the job queue, the cursor, sessions by
    state, the failed and held ones, the meters. Run it on the store's thread (its state lives there, and
    the event loop never waits for the database)."""
    counts = store.job_counts()
    open_jobs: dict[str, int] = {}
    for status in OPEN:
        for kind, n in counts.get(status, {}).items():
            open_jobs[kind] = open_jobs.get(kind, 0) + n
    return {
        "connected_charge_points": sorted(service.links),
        "online_charge_points": sorted(cp for cp in service.links if service.online(cp)),
        "queue_depth": sum(open_jobs.values()),
        "pending_jobs_by_kind": open_jobs,
        "failed_jobs": sum(counts.get(JobStatus.FAILED, {}).values()),
        "last_processed_block": store.cursor(),
        "sessions_by_state": store.counts_by_state(),
        "failed_sessions": [_listed(service, s) for s in store.sessions_in({State.FAILED})[-FAILED_SHOWN:]],
        "held_sessions": [_listed(service, s) for s in store.sessions_in({State.HELD})[-FAILED_SHOWN:]],
        "signing_stations": sorted(i for i, key in service.meter_keys.items() if key),
        "meter_problems": dict(service.meter_problems),
        "conflicts": store.thread.conflicts,
    }


def health_report(
    operator: str,
    role: str,
    of_service: dict[str, Any],
    chain: tuple[EventWatcher, ChainWorker],
    chain_started: bool,
    records: TransactionLog | None,
    parts: dict[str, Any],
) -> dict[str, Any]:
    """The /health document around the session service's part (:func:`service_report`). ``chain``: the
    event watcher and the chain worker (``chain_started``: running); ``parts``: the optional parts by
    name ("upstream", "ocpi", "cards"), each with a ``health()`` (None: not configured). The parts and
    the transaction record read their own databases: call it off the event loop."""
    return {
        "operator": operator,
        "role": role,
        **of_service,
        "chain_head": chain[0].head,
        "chain_reachable": chain_started and all(part.outage.since is None for part in chain),
        "records": records_health(records),
        **{name: None if part is None else part.health() for name, part in parts.items()},
    }


def _listed(service: SessionService, s: SessionRecord) -> dict[str, Any]:
    """A failed or held session in /health: its id as 0x and 64 hex digits, the idTag the charge point
    used, where it was, what failed."""
    return {
        "session_id": hex_session_id(s.session_id),
        "id_tag": service.charge_point_tag(s),
        "charge_point_id": s.charge_point_id,
        "connector": s.connector,
        "error": s.last_error,
    }
