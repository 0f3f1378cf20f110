"""The chain as the daemon first meets it: is it the deployment's chain, is our key a registered operator
there, does the database belong to this deployment; and the escrow reads the sessions side asks for
(a session's state, a charge point's station, a station's meter key)."""

from __future__ import annotations

import asyncio
import logging

from web3 import Web3

from core_client.chain.batched_reads import BatchedReads
from core_client.storage.store import Store
from ev_network.contracts import Escrow, Session, SessionState, Station
from ev_network.deployment import Deployment
from ev_network.errors import ChainUnavailable, EVNetworkError

log = logging.getLogger("core_client")


class OperatorChain:
    """The deployment's escrow, read for one operator (``operator``, its address)."""

    def __init__(self, w3: Web3, deployment: Deployment, operator: str, rpc_url: str) -> None:
        self.w3, self.deployment, self.operator, self.rpc_url = w3, deployment, operator, rpc_url
        self.escrow = Escrow(w3, deployment)
        # asked for per session and per charge point: sent to the node together (see batched_reads)
        self._sessions: BatchedReads[int, Session] = BatchedReads(self.escrow.get_sessions)
        self._stations: BatchedReads[int, Station] = BatchedReads(self.escrow.get_stations)
        self.operator_name = ""  # as registered on chain, once checked
        self._warned = False

    @property
    def identity(self) -> str:
        """chain:escrow:operator, what the database and the signer lease belong to."""
        return f"{self.deployment.chain_id}:{self.deployment.escrow}:{self.operator}"

    async def check(self, store: Store, database: str) -> bool:
        """False if the chain does not answer; else check it is the deployment's chain, that our key is
        a registered operator there, and that ``store`` (``database``, as shown) belongs to this
        deployment (raising EVNetworkError if not)."""
        try:
            chain_id = await asyncio.to_thread(lambda: self.w3.eth.chain_id)
        except Exception as error:
            if not self._warned:
                log.warning("waiting for the chain at %s (%s)", self.rpc_url, error)
                self._warned = True
            return False
        if chain_id != self.deployment.chain_id:
            raise EVNetworkError(
                f"{self.rpc_url} is chain {chain_id}, the deployment is for chain {self.deployment.chain_id}"
            )
        try:
            operator = await asyncio.to_thread(self.escrow.operator_of, self.operator)
        except ChainUnavailable:
            return False
        if not operator.registered:
            raise EVNetworkError(f"{self.operator} is not a registered operator on this escrow")
        self.operator_name = operator.name
        await store.thread.run(self.check_database, store, database)  # the store is the store thread's
        return True

    def check_database(self, store: Store, database: str) -> None:
        """Refuse a database written for another chain, escrow or operator (its cursor and jobs would lie)."""
        identity = self.identity
        stored = store.meta("identity")
        if stored is None:
            store.set_meta("identity", identity)
        elif stored != identity:
            raise EVNetworkError(
                f"database {database} belongs to chain:escrow:operator {stored}, not {identity}; "
                "use a new database file for a new deployment or operator"
            )

    async def session_state(self, session_id: int) -> SessionState | None:
        """The session's state on chain (None: the chain does not answer)."""
        try:
            return (await self._sessions.get(session_id)).state
        except ChainUnavailable:
            return None

    async def station_of(self, cp_id: str) -> tuple[int, int] | None:
        """(station id, connectors) of the charge point, if it is one of our stations."""
        station = await asyncio.to_thread(self.escrow.station_by_charge_point, cp_id)
        if station is None or station.operator != self.operator:
            return None
        return station.station_id, station.connectors

    async def meter_key(self, station_id: int) -> bytes:
        """The station's meter key on chain (b"": none)."""
        return bytes((await self._stations.get(station_id)).meter_public_key)
