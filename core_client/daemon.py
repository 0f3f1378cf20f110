"""The Core Client daemon: wires settings, key, chain, store, session service, OCPP and control servers,
the HTTP front ends (live data, dashboard) and the OCPI endpoints for the CPO's CSMS, each when configured.

:class:`Daemon` has ``start()``/``stop()`` for embedding (tests, demo); :func:`core_client.process.run`
runs one until SIGINT/SIGTERM. Shutdown order: stop the front ends and OCPI, stop
accepting and close the charge point links, stop reading events and sending new transactions, wait
for the receipts of the transactions already sent, close the database. Logs never contain keys or passwords.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from web3 import Web3

from core_client.chain.mandates import MandateCache
from core_client.chain.operator_check import OperatorChain
from core_client.chain.station_registry import EscrowRegistry
from core_client.chain.watcher import ChainWorker, EventWatcher
from core_client.config import ConfigError, Settings
from core_client.health import health_report, service_report
from core_client.ocpi.cpo.service import CpoService
from core_client.ocpi.service import OcpiService
from core_client.ocpi.startup import link_and_pull, start_cpo, start_emsp
from core_client.ocpp.adapter import load_schemas
from core_client.ocpp.server import AcceptFailures, OcppServer
from core_client.proxy.relay import proxy_for
from core_client.records.anchoring import anchor_loop, transaction_log
from core_client.records.log import TransactionLog
from core_client.sessions.held_desk import HeldDesk
from core_client.sessions.jobs import OPEN
from core_client.sessions.local_list_sync import LocalListSync
from core_client.sessions.machine import SessionRecord
from core_client.sessions.service import SessionService
from core_client.storage.card_state import LocalLists
from core_client.storage.claims import BEAT_EVERY_S, claims_for
from core_client.storage.database import describe
from core_client.storage.lease import GIVES_UP_WITHIN_S, Lease, LeaseLost
from core_client.storage.notices import notices_for
from core_client.storage.store import Store
from core_client.web.control import ControlServer
from core_client.web.front_ends import start_front_ends, stop_front_ends
from ev_network.chain import http_web3
from ev_network.contracts import Escrow
from ev_network.deployment import Deployment
from ev_network.errors import ChainUnavailable, EVNetworkError
from ev_network.keys import load_keyfile
from ev_network.mandates import Mandates
from ev_network.tx import TxSender
from ev_network.web.server import HttpServer

log = logging.getLogger("core_client")
CHECKPOINT_EVERY_S = 2.0
START_PROBE_S = 0.25  # how long start waits for the chain before serving OCPP without it
LEASE_RETRY_S = 1.0  # a standby instance asks for the signer lease this often


async def _listening(start: Awaitable[None], setting: str, host: str, port: int) -> None:
    """Await a server's ``start``; a port taken or a host that does not resolve is a ConfigError naming
    the ``{setting}_host`` / ``{setting}_port`` setting, in one line."""
    try:
        await start
    except socket.gaierror as error:
        raise ConfigError(f"{setting}_host {host!r} does not resolve ({error.strerror})") from None
    except OSError as error:
        raise ConfigError(f"{setting}_port {port} on {host}: {error.strerror or error}") from None


def make_web3(settings: Settings) -> Web3:
    """A Web3 without web3's own retries: the daemon retries (and logs outages) itself."""
    return http_web3(settings.rpc_url, settings.rpc_timeout_s, retries=False)


class Daemon:
    """One running Core Client."""

    def __init__(self, settings: Settings, password: str) -> None:
        self.settings = settings
        self.account = load_keyfile(settings.keystore, password)
        self.deployment = Deployment.load(settings.deployment_file)
        if settings.cards_file is not None and not self.deployment.payment_mandates:
            raise ConfigError("cards_file is set but the deployment names no payment_mandates contract: deploy again")
        self.stopped = asyncio.Event()
        self.fatal: asyncio.Future[None] | None = None  # set to the error that ends the daemon
        self.chain_started = False
        self.role = (
            "starting"  # then "leader" (signs) or "standby" (another instance holds the lease), both serving OCPP
        )
        self._tasks: list[asyncio.Task] = []  # ended by stop(): the reconcile loop, the watcher, the worker
        self._background: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self.records: TransactionLog | None = None
        self.front_ends: dict[str, HttpServer] = {}  # by config section: "live", "dashboard"
        self.ocpi: OcpiService | None = None  # OCPI mode: our endpoints for the CPO's CSMS
        self.ocpi_cpo: CpoService | None = None  # [ocpi_cpo]: our endpoints for roaming eMSPs, as their CPO
        self.cards: MandateCache | None = None  # RFID cards: the mandates drivers granted us
        self.local_lists: LocalListSync | None = None  # the cards in the charge points' local lists
        # a lost signer lease, from the lease's watcher thread: core_client.process ends the process at once
        self.on_lease_lost: Callable[[LeaseLost], None] | None = None

    async def start(self) -> None:
        """Open the store (refusing one of another version) and start serving OCPP and control. If the
        chain answers, check it (chain id, operator, the store's deployment) first and start the chain
        side; if not, serve OCPP anyway (known stations boot, unknown ones get Pending) and start the
        chain side once the chain is back (a failed check then ends :func:`run` with its error)."""
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self.fatal = self._loop.create_future()
        asyncio.get_running_loop().set_exception_handler(AcceptFailures())  # no traceback per failed accept
        self.store = Store(s.database)  # first: a database of an old version is refused at once
        load_schemas()  # every OCPP 1.6 schema in memory: no frame needs a file descriptor later
        try:
            self.w3_events, self.w3_tx = make_web3(s), make_web3(s)
            self.chain = OperatorChain(self.w3_events, self.deployment, self.account.address, s.rpc_url)
            self.records = transaction_log(s, self.deployment, make_web3(s), self.store.db)
            try:  # a node that accepts and never answers must not keep OCPP closed: the chain side starts later
                reachable = await asyncio.wait_for(self._check_chain(), START_PROBE_S)
            except asyncio.TimeoutError:
                reachable = False
        except BaseException:
            self.store.close()
            if self.records is not None:
                self.records.close()
            raise
        # several instances: which one holds which charge point, and the wake-ups between them
        self.notices = notices_for(self.store.db, self.chain.identity)
        self.claims = claims_for(self.store.db, notices=self.notices)
        self.service = SessionService(
            s, self.store, self.chain.session_state, self.chain.station_of, self.chain.meter_key, self.claims
        )
        self.watcher = EventWatcher(
            self.w3_events,
            self.deployment,
            self.account.address,
            self.store,
            self.service,
            s.poll_interval_s,
            s.confirmations,
            s.start_block,
        )
        self.sender = TxSender(  # one sender: escrow jobs and anchors share its nonces
            self.w3_tx,
            self.account,
            bump_after=s.fee_bump_after_s or None,
            max_fee_per_gas=None if s.max_fee_per_gas_gwei is None else int(s.max_fee_per_gas_gwei * 10**9),
        )
        escrow = Escrow(self.w3_tx, self.deployment, self.sender)
        mandates = Mandates(self.w3_tx, self.deployment, self.sender) if self.deployment.payment_mandates else None
        self.worker = ChainWorker(
            escrow, self.store, self.service, s.batch_max, s.settle_batch_window_s, mandates=mandates
        )
        if s.cards_file is not None:
            reader = Mandates(self.w3_events, self.deployment)
            self.cards = MandateCache(
                reader, self.account.address, s.cards_file, self.deployment.deployment_block, self.store, s.cards_poll_s
            )
            self.service.cards.index = self.cards.current
        self.service.on_job_queued = self.worker.wake
        self.proxy = proxy_for(s)
        if self.cards is not None and self.proxy is None:  # in proxy mode the charge points' lists are the CSMS's
            cards = self.service.cards
            kept = LocalLists(self.store.db)
            self.local_lists = LocalListSync(self.service.registry, self.cards.current, cards.seen, cards.queued, kept)
            self.cards.on_change = self.local_lists.wake
            on_loop = self.store.thread.to_loop  # cards are seen and used on the store's thread
            cards.on_seen = lambda: on_loop(self.local_lists.wake)
            cards.on_used = lambda mandate_id: on_loop(self.local_lists.touch, mandate_id)
        self.ocpp = OcppServer(s, self.service, self.records, self.proxy)
        reclaim_after_s = self.deployment.max_duration + self.deployment.reclaim_grace
        self.held = HeldDesk(self.service, reclaim_after_s, self._record_decision)
        self.control = ControlServer(s, self.service, self.report, self.held)
        self.lease = Lease(self.store.db, f"signer:{self.chain.identity}")
        leading = await asyncio.to_thread(self.lease.try_acquire)
        self.service.leading = leading
        try:
            await _listening(self.control.start(), "control", s.control_host, s.control_port)
            await self._serve()
        except BaseException:
            await stop_front_ends(self.front_ends)
            await self.ocpp.close()
            await self.control.close()
            self.notices.close()
            self.lease.release()
            self.store.close()
            raise
        if leading:
            await self._lead(reachable)
        else:  # several instances on one PostgreSQL: another signs for the operator; serve and stand by for it
            self.role = "standby"
            await self._beat_now()  # the other instances' dashboards say so at once, not at the next beat
            log.info("standing by: another instance holds the signer lease of operator %s", self.account.address)
            self._background.append(asyncio.get_running_loop().create_task(self._stand_by()))

    async def _serve(self) -> None:
        """What every instance does: serve the charge points (the OCPP port, the reconcile loop that makes
        the calls their sessions wait for, RFID cards and local lists), the live data and the dashboard, and, among several instances on one
        PostgreSQL, say it is alive (see core_client.storage.claims)."""
        s, loop = self.settings, asyncio.get_running_loop()
        await _listening(self.ocpp.start(), "listen", s.listen_host, s.listen_port)
        # the live data and the dashboard on every instance: each shows the operator's whole picture
        self.front_ends = await start_front_ends(
            s, self.service, make_web3(s), self.deployment, self.account.address, self.held, self.claims
        )
        self._tasks = [loop.create_task(self.service.run())]
        self._background.append(loop.create_task(self._checkpoints()))  # cancelled at shutdown
        if self.claims.shared:
            await asyncio.to_thread(self._beat)  # in the instances table before it makes any decision
            self._background.append(loop.create_task(self._beats()))
            on_loop = loop.call_soon_threadsafe  # heard on the listener's thread
            self.notices.listen(lambda cp: on_loop(self._told, cp), lambda: on_loop(self.worker.wake))
        if self.cards is not None:
            self._background.append(loop.create_task(self.cards.run()))
        if self.local_lists is not None:
            self._background.append(loop.create_task(self.local_lists.run()))

    async def _lead(self, reachable: bool) -> None:
        """Run the chain side (and OCPI): this instance holds the signer lease. A shared
        lease was maybe lost by another instance just now: that one stops within GIVES_UP_WITHIN_S
        (see core_client.storage.lease), so this one waits that long before it signs anything."""
        s = self.settings
        if self.lease.shared:
            log.info("signer lease taken: leading in %gs (a former holder has stopped by then)", GIVES_UP_WITHIN_S)
            await asyncio.sleep(GIVES_UP_WITHIN_S)
        try:
            await self._start_ocpi()
        except BaseException:
            await stop_front_ends(self.front_ends)
            if self.ocpi is not None:
                await self.ocpi.stop()
            await self.ocpp.close()
            await self.control.close()
            self.notices.close()
            self.lease.release()
            self.store.close()
            raise
        self.service.leading, self.role = True, "leader"
        await self._beat_now()
        loop = asyncio.get_running_loop()
        self.lease.watch(self._lease_lost)
        try:
            if reachable:
                await self._start_chain_side()
        except ChainUnavailable:  # gone again between the check and the first read
            reachable = False
        if not reachable:
            log.warning("chain unreachable at %s: serving OCPP; the chain side starts when it is back", s.rpc_url)
            self._background.append(loop.create_task(self._chain_later()))

    async def _stand_by(self) -> None:
        """Wait for the signer lease (the leader died or let it go), then lead."""
        try:
            while not await asyncio.to_thread(self.lease.try_acquire):
                await asyncio.sleep(LEASE_RETRY_S)
            await asyncio.to_thread(self.store.db.renew)  # the server answers: connect afresh, no backoff
            log.info("signer lease of operator %s taken over: leading", self.account.address)
            await self._lead(await self._check_chain())
        except Exception as error:
            self._fail(error)

    def _lease_lost(self, why: str) -> None:
        """Called from the lease's watcher thread: end the daemon without a further step of the event loop
        (which may itself wait on the unreachable database), so that it signs nothing more while another
        instance may already lead: :attr:`on_lease_lost` (run as a process: it ends at once), else :attr:`fatal`."""
        error = LeaseLost(f"the signer lease of operator {self.account.address} was lost ({why}): stopping at once")
        if self.on_lease_lost is not None:
            self.on_lease_lost(error)
        else:
            self._loop.call_soon_threadsafe(self._fail, error)

    def _fail(self, error: BaseException) -> None:
        """End :func:`run` with ``error``."""
        log.error("%s", error)
        if self.fatal is not None and not self.fatal.done():
            self.fatal.set_exception(error)

    async def _start_ocpi(self) -> None:
        """The OCPI sides whose sections are configured (core_client.ocpi.startup): the eMSP side for the
        CPO's CSMS, with its loop linking the stations imported from it; the CPO side for roaming eMSPs."""
        s, loop, token = self.settings, asyncio.get_running_loop(), self.deployment.token
        stations = EscrowRegistry(Escrow(self.w3_tx, self.deployment, self.sender), self.deployment)
        self.ocpi = await start_emsp(s, self.service, self.records, self.w3_events, token, stations)
        if self.ocpi is not None:
            self._background.append(loop.create_task(link_and_pull(self.ocpi, self.service)))
        mandates = Mandates(self.w3_events, self.deployment) if self.deployment.payment_mandates else None
        self.ocpi_cpo = await start_cpo(
            s, self.store, self.service, self.chain.escrow, self.w3_events, token, mandates, self.account.address
        )
        if self.ocpi_cpo is not None:
            self._background.append(loop.create_task(self.ocpi_cpo.run()))

    async def _start_chain_side(self) -> None:
        await self.watcher.initialize()
        loop = asyncio.get_running_loop()
        self._tasks += [loop.create_task(self.watcher.run()), loop.create_task(self.worker.run())]
        if self.records is not None:
            self._tasks.append(loop.create_task(anchor_loop(self.records, self.sender, self._stopping)))
        self.chain_started = True
        log.info(
            "Core Client of operator %s (%s) running; events from block %s",
            self.account.address,
            self.chain.operator_name,
            (await self.store.thread.run(self.store.cursor) or 0) + 1,
        )

    async def _chain_later(self) -> None:
        delay = 0.5
        try:
            while not await self._check_chain():
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
            while True:
                try:
                    return await self._start_chain_side()
                except ChainUnavailable:  # gone again between the check and the first read
                    await asyncio.sleep(delay)
        except Exception as error:
            self._fail(EVNetworkError(f"cannot start the chain side: {error}"))

    def _told(self, charge_point_id: str | None) -> None:
        """Another instance changed a session at a charge point (None: any) that this one may hold: the
        reconcile pass looks now (see core_client.storage.notices)."""
        if charge_point_id is None or charge_point_id in self.service.links:
            self.service.wake()

    def _beat(self) -> None:
        control = f"http://{self.settings.control_host}:{self.settings.control_port}"
        ocpp = f"ws://{self.settings.listen_host}:{self.settings.listen_port}"
        self.claims.beat(self.role, ocpp, control)

    async def _beats(self) -> None:
        """Write this instance's row in the instances table every BEAT_EVERY_S, in a thread."""
        while True:
            await asyncio.sleep(BEAT_EVERY_S)
            await self._beat_now()

    async def _beat_now(self) -> None:
        """Write this instance's row now (its role has changed), in a thread."""
        if not self.claims.shared:
            return
        try:
            await asyncio.to_thread(self._beat)
        except Exception as error:  # the database away: the next one catches up
            log.warning("instance heartbeat failed: %s", error)

    async def _checkpoints(self) -> None:
        """Move the database's write-ahead log into its file now and then, in a thread (see Store)."""
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            try:
                await asyncio.to_thread(self.store.checkpoint)
            except Exception as error:  # a busy or full disk: the next one catches up
                log.warning("database checkpoint failed: %s", error)

    async def stop(self, drain_timeout: float = 10) -> None:
        """Clean shutdown (see the module docstring)."""
        log.info("shutting down")
        await stop_front_ends(self.front_ends)
        if self.ocpi is not None:
            await self.ocpi.stop()
        if self.ocpi_cpo is not None:
            await self.ocpi_cpo.stop()
        await self.ocpp.close()
        await self.control.close()
        self.watcher.stop()
        self.worker.stop()
        self._stopping.set()
        await self.service.close()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        if self.chain_started:
            await self.worker.drain(drain_timeout)
        left = len(await self.store.thread.run(self.store.jobs, *OPEN))
        await asyncio.to_thread(self.notices.close)
        if self.claims.shared:
            try:
                await asyncio.to_thread(self.claims.leave)
            except Exception as error:  # the database away: its row ages out, its claims with it
                log.warning("could not leave the instances table: %s", error)
        self.lease.release()
        self.store.close()
        if self.records is not None:
            self.records.close()
        if self.proxy is not None:
            self.proxy.outbox.close()
        log.info("stopped (%d chain jobs left for the next start)", left)
        self.stopped.set()

    def health(self) -> dict[str, Any]:
        """The /health document (:mod:`core_client.health`), read in the calling thread (a test's)."""
        return self._health(service_report(self.store, self.service))

    async def report(self) -> dict[str, Any]:
        """The /health document, the event loop waiting for no database: the session service's part on
        the store's thread, the rest (the record, the optional parts, the instances) in a worker thread."""
        of_service = await self.service.handle(service_report, self.store, self.service)
        return await asyncio.to_thread(self._health, of_service)

    def _health(self, of_service: dict[str, Any]) -> dict[str, Any]:
        parts = {"upstream": self.proxy, "ocpi": self.ocpi, "ocpi_cpo": self.ocpi_cpo, "cards": self.cards}
        chain = (self.watcher, self.worker)
        report = health_report(
            self.account.address, self.role, of_service, chain, self.chain_started, self.records, parts
        )
        return {**report, "instance": self.claims.instance_id, "instances": self.claims.instances()}

    async def _check_chain(self) -> bool:
        """False if the chain does not answer; raises if it is not the deployment's (see OperatorChain)."""
        return await self.chain.check(self.store, describe(self.settings.database))

    def _record_decision(self, s: SessionRecord, decision: str) -> None:
        """The operator's decision on a held session, in the anchored transaction record (a refund bills no
        energy: recorded with the start reading as its stop)."""
        meter_stop = s.meter_stop if s.meter_stop is not None else s.meter_start
        if self.records is not None and s.transaction_id is not None and meter_stop is not None:
            self.records.record_decision(s.transaction_id, s.charge_point_id, meter_stop, decision)
