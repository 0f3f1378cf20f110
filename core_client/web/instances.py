"""The operator's instances as the dashboard shows them: several Core Client instances of one operator on
one PostgreSQL each write their row in the shared database (:mod:`core_client.storage.claims`), so the
dashboard of any of them shows every instance, its role, whether it is alive, and the charge points it
holds, read from that database (never from the instance's own memory)."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel


class Directory(Protocol):
    """Who is alive and who holds which charge point (:class:`core_client.storage.claims.Claims`; on
    SQLite, one instance alone: ``shared`` False)."""

    shared: bool
    instance_id: str

    def instances(self) -> list[dict[str, Any]]: ...

    def holders(self) -> dict[str, str]: ...


class InstanceRow(BaseModel):
    instance: str
    role: str  # "leader" (signs for the operator) or "standby"
    alive: bool  # wrote its row lately (a killed or cut-off instance stops)
    this: bool  # the instance serving this page
    charge_points: list[str]  # the charge points whose sockets it holds
    control_url: str | None
    seen_s_ago: float


class Instances(BaseModel):
    """The instances panel: every instance (the alive first, the leader first among them), who leads,
    and charge point -> the instance holding it."""

    rows: list[InstanceRow]
    leader: str | None
    holders: dict[str, str]


def instances_view(directory: Directory | None, now: float) -> Instances | None:
    """What the dashboard shows of the instances (None: one instance alone, nothing to show)."""
    if directory is None or not directory.shared:
        return None
    holders = directory.holders()
    held: dict[str, list[str]] = {}
    for charge_point, instance in sorted(holders.items()):
        held.setdefault(instance, []).append(charge_point)
    rows = [
        InstanceRow(
            instance=row["instance"],
            role=row["role"],
            alive=row["alive"],
            this=row["instance"] == directory.instance_id,
            charge_points=held.get(row["instance"], []) if row["alive"] else [],
            control_url=row["control_url"],
            seen_s_ago=round(max(now - row["seen_at"], 0.0), 1),
        )
        for row in directory.instances()
    ]
    rows.sort(key=lambda r: (not r.alive, r.role != "leader", r.instance))
    leader = next((r.instance for r in rows if r.alive and r.role == "leader"), None)
    return Instances(rows=rows, leader=leader, holders=holders)
