"""Typed wrappers of the EV Network contracts: the escrow (with its station registry) and the token.

Reads are plain methods; writes go through a :class:`~ev_network.tx.TxSender` and return the
receipt (or, with ``wait=False``, the transaction hash)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account.messages import encode_typed_data
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD

from ev_network.abi_types import check_args
from ev_network.deployment import Deployment, load_abi
from ev_network.errors import ContractRevert, EVNetworkError
from ev_network.pricing import Tariff
from ev_network.tx import TxSender
from ev_network.views import View, call, call_many, views_of


class SessionState(IntEnum):
    NONE = 0
    REQUESTED = 1
    ACTIVE = 2
    SETTLED = 3
    CANCELLED = 4
    EXPIRED = 5
    CLOSED = 6  # ended, and its lane holds a later session: the outcome is in its events


class CancelReason(IntEnum):
    DRIVER_CANCELLED = 0
    STATION_OFFLINE = 1
    CONNECTOR_BUSY = 2
    CHARGER_REJECTED = 3
    OTHER = 4


@dataclass(frozen=True)
class Session:
    """A session as stored: ``since`` is when it entered its state (opened, started or ended). For None and
    Closed only the id's parts (driver, lane, seq) are known."""

    session_id: int
    driver: str
    lane: int
    seq: int
    state: SessionState
    deposit: int
    station_id: int
    tariff_id: int
    since: int
    meter_start: int


@dataclass(frozen=True)
class Station:
    station_id: int
    operator: str
    tariff_id: int
    connectors: int
    active: bool
    charge_point_id: str
    meter_public_key: bytes


@dataclass(frozen=True)
class Operator:
    payout: str
    registered: bool
    name: str


def _session(session_id: int, raw: tuple) -> Session:
    return Session(session_id, raw[0], raw[1], raw[2], SessionState(raw[3]), *raw[4:])


class NoSender(EVNetworkError):
    """A write was attempted on a read-only wrapper."""


class _Wrapper:
    def __init__(self, w3: Web3, address: str, abi_name: str, sender: TxSender | None) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=load_abi(abi_name))
        self.sender = sender
        self.abi_name = abi_name
        self._functions = {item["name"]: item for item in load_abi(abi_name) if item["type"] == "function"}
        self._views = views_of(abi_name)

    def _fn(self, name: str, *args: Any) -> ContractFunction:
        """The call of function ``name`` with ``args``, each checked against its ABI type first
        (ValueOutOfRange names the argument and the limit)."""
        if name not in self._functions:
            raise EVNetworkError(f"contract {self.address} ({self.abi_name}) has no function {name}")
        check_args(self._functions[name], args)
        return getattr(self.contract.functions, name)(*args)

    def _view(self, name: str, *args: Any, block: Any = "latest") -> Any:
        """Call view function ``name`` with ``args`` (checked as :meth:`_fn` does) at ``block``: the cheap
        path of :mod:`ev_network.views`, not web3's ContractFunction."""
        view = self._view_named(name)
        check_args(self._functions[name], args)
        return call(self.w3, self.address, view, args, block)

    def _view_many(self, name: str, calls: list[tuple]) -> list[Any]:
        """:meth:`_view` of each ``args`` in ``calls``, as one JSON-RPC batch: answers in order, a call's
        revert as its ContractRevert (returned, not raised)."""
        view = self._view_named(name)
        for args in calls:
            check_args(self._functions[name], args)
        return call_many(self.w3, self.address, view, calls)

    def _view_named(self, name: str) -> View:
        if name not in self._views:
            raise EVNetworkError(f"contract {self.address} ({self.abi_name}) has no view function {name}")
        return self._views[name]

    def _send(self, fn: Any, wait: bool) -> Any:
        if self.sender is None:
            raise NoSender(f"{fn.fn_name}: this wrapper has no account to send from")
        return self.sender.transact(fn) if wait else self.sender.submit(fn)


class Escrow(_Wrapper):
    """The SessionEscrow contract, including the StationRegistry it inherits."""

    def __init__(self, w3: Web3, deployment: Deployment, sender: TxSender | None = None) -> None:
        super().__init__(w3, deployment.escrow, "SessionEscrow", sender)
        self.deployment = deployment

    def with_sender(self, sender: TxSender) -> Escrow:
        return Escrow(self.w3, self.deployment, sender)

    # -- reads
    def get_session(self, session_id: int) -> Session:
        return _session(session_id, self._view("getSession", session_id))

    def get_sessions(self, session_ids: list[int]) -> list[Session | EVNetworkError]:
        """:meth:`get_session` of each id, in one JSON-RPC batch request (a read that failed: its error)."""
        answers = self._view_many("getSession", [(i,) for i in session_ids])
        return [
            a if isinstance(a, EVNetworkError) else _session(i, a) for i, a in zip(session_ids, answers, strict=True)
        ]

    def get_station(self, station_id: int) -> Station:
        return Station(*self._view("getStation", station_id))

    def get_stations(self, station_ids: list[int]) -> list[Station | EVNetworkError]:
        """:meth:`get_station` of each id, in one JSON-RPC batch request (UnknownStation and the like: the error)."""
        answers = self._view_many("getStation", [(i,) for i in station_ids])
        return [a if isinstance(a, EVNetworkError) else Station(*a) for a in answers]

    def station_by_charge_point(self, charge_point_id: str) -> Station | None:
        """The station registered under ``charge_point_id``, or None."""
        try:
            return Station(*self._view("stationByChargePoint", charge_point_id))
        except ContractRevert as exc:
            if exc.name == "UnknownStation":
                return None
            raise

    def station_count(self) -> int:
        return self._view("stationCount")

    def stations(self) -> list[Station]:
        return [self.get_station(i) for i in range(1, self.station_count() + 1)]

    def get_tariff(self, tariff_id: int) -> Tariff:
        return Tariff(*self._view("getTariff", tariff_id))

    def operator_of(self, account: str) -> Operator:
        return Operator(*self._view("operatorOf", account))

    def quote(self, tariff_id: int, energy_wh: int, duration_s: int = 0) -> int:
        return self._view("quote", tariff_id, energy_wh, duration_s)

    def session_id_tag(self, session_id: int) -> str:
        """The idTag naming ``session_id`` at a metered station, as the escrow computes it."""
        return bytes(self._view("sessionIdTag", session_id)).decode()

    def settlement_cost(self, session_id: int, meter_stop: int) -> int:
        return self._view("settlementCost", session_id, meter_stop)

    # -- driver
    def open(self, station_id: int, connector: int, deposit: int, *, wait: bool = True) -> Any:
        return self._send(self._fn("open", station_id, connector, deposit), wait)

    def open_with_permit(
        self,
        station_id: int,
        connector: int,
        deposit: int,
        permit: tuple[int, int, bytes, bytes],
        *,
        allowance: int | None = None,
        wait: bool = True,
    ) -> Any:
        """``permit`` = (deadline, v, r, s) signed for ``allowance`` (default: exactly the deposit)."""
        deadline, v, r, s = permit
        value = deposit if allowance is None else allowance
        fn = self._fn("openWithPermit", station_id, connector, deposit, value, deadline, v, r, s)
        return self._send(fn, wait)

    def request_stop(self, session_id: int, *, wait: bool = True) -> Any:
        return self._send(self._fn("requestStop", session_id), wait)

    def cancel(self, session_id: int, *, wait: bool = True) -> Any:
        return self._send(self._fn("cancel", session_id), wait)

    def reclaim(self, session_id: int, *, wait: bool = True) -> Any:
        return self._send(self._fn("reclaim", session_id), wait)

    # -- operator
    def start(self, session_id: int, transaction_id: int, meter_start: int, *, wait: bool = True) -> Any:
        return self._send(self._fn("start", session_id, transaction_id, meter_start), wait)

    def start_batch(
        self, session_ids: list[int], transaction_ids: list[int], meter_starts: list[int], *, wait: bool = True
    ) -> Any:
        return self._send(self._fn("startBatch", session_ids, transaction_ids, meter_starts), wait)

    def reject(self, session_id: int, reason: CancelReason, *, wait: bool = True) -> Any:
        return self._send(self._fn("reject", session_id, int(reason)), wait)

    def refund_active(self, session_id: int, *, wait: bool = True) -> Any:
        """Refund a started session of one of the operator's stations in full (a held session's reject)."""
        return self._send(self._fn("refundActive", session_id), wait)

    def settle(self, session_id: int, meter_stop: int, *, wait: bool = True) -> Any:
        return self._send(self._fn("settle", session_id, meter_stop), wait)

    def settle_at(self, session_id: int, meter_stop: int, ended_at: int, *, wait: bool = True) -> Any:
        """Settle with the time fee counted until ``ended_at`` (unix seconds, from the start on chain to now): the
        end a CSMS's charge detail record gives, not the settle's block."""
        return self._send(self._fn("settleAt", session_id, meter_stop, ended_at), wait)

    def settle_batch(self, session_ids: list[int], meter_stops: list[int], *, wait: bool = True) -> Any:
        return self._send(self._fn("settleBatch", session_ids, meter_stops), wait)

    def settle_batch_at(
        self, session_ids: list[int], meter_stops: list[int], ended_ats: list[int], *, wait: bool = True
    ) -> Any:
        return self._send(self._fn("settleBatchAt", session_ids, meter_stops, ended_ats), wait)

    def settle_signed(self, settlement: tuple, *, wait: bool = True) -> Any:
        """Settle a metered station's session on its signed records: ``settlement`` as
        :func:`ev_network.ocmf.signed_settlement` builds it ((sessionId, meterStop, [records]))."""
        return self._send(self.contract.functions.settleSigned(settlement), wait)

    def settle_signed_at(self, settlement: tuple, ended_at: int, *, wait: bool = True) -> Any:
        """settle_signed with the time fee counted until ``ended_at`` (as :meth:`settle_at`)."""
        return self._send(self.contract.functions.settleSignedAt(settlement, ended_at), wait)

    def settle_signed_batch(self, settlements: list[tuple], *, wait: bool = True) -> Any:
        return self._send(self.contract.functions.settleSignedBatch(settlements), wait)

    def set_meter_public_key(self, station_id: int, public_key: bytes, *, wait: bool = True) -> Any:
        """Register, rotate (or, with ``b""``, remove) the station's P-256 meter key (DER, 65 or 64 bytes)."""
        return self._send(self.contract.functions.setMeterPublicKey(station_id, public_key), wait)

    def add_station(
        self,
        charge_point_id: str,
        connectors: int,
        tariff: Tariff,
        meter_public_key: bytes = b"",
        *,
        wait: bool = True,
    ) -> Any:
        fn = self._fn("addStation", charge_point_id, connectors, tariff.as_tuple(), meter_public_key)
        return self._send(fn, wait)

    def set_tariff(self, station_id: int, tariff: Tariff, *, wait: bool = True) -> Any:
        return self._send(self._fn("setTariff", station_id, tariff.as_tuple()), wait)

    def set_active(self, station_id: int, active: bool, *, wait: bool = True) -> Any:
        return self._send(self._fn("setActive", station_id, active), wait)

    def set_payout(self, payout: str, *, wait: bool = True) -> Any:
        return self._send(self._fn("setPayout", payout), wait)

    # -- registrar
    def register_operator(self, account: str, payout: str, name: str, *, wait: bool = True) -> Any:
        return self._send(self._fn("registerOperator", account, payout, name), wait)

    def session_id_from(self, receipt: dict) -> int:
        """The session id of an ``open`` receipt (from its SessionRequested event)."""
        events = self.contract.events.SessionRequested().process_receipt(receipt, errors=DISCARD)
        if not events:
            raise EVNetworkError("receipt holds no SessionRequested event")
        return events[0]["args"]["sessionId"]

    def signed_settlement_of(self, tx_hash: Any, session_id: int) -> tuple | None:
        """The SignedSettlement (sessionId, meterStop, [records as (payload, r, s, offsets)]: [Begin, End] or one
        record holding both) that settled ``session_id`` in transaction ``tx_hash`` (settleSigned or
        settleSignedBatch), read from the transaction's input: the signed records as the escrow checked them.
        None for any other transaction."""
        try:
            fn, args = self.contract.decode_function_input(self.w3.eth.get_transaction(tx_hash)["input"])
        except ValueError:
            return None
        if fn.fn_name == "settleSigned":
            candidates = [args["settlement"]]
        elif fn.fn_name == "settleSignedBatch":
            candidates = list(args["settlements"])
        else:
            return None
        for c in candidates:
            if c["sessionId"] == session_id:
                records = [(r["payload"], r["r"], r["s"], r["offsets"]) for r in c["records"]]
                return (c["sessionId"], c["meterStop"], records)
        return None

    def meter_key_at(self, station_id: int, timestamp: int, block: Any = "latest") -> bytes:
        """The meter key (04 || x || y, empty for none) station ``station_id`` had at ``timestamp``: the key that
        settles a session started then (a later rotation does not change it)."""
        return bytes(self._view("meterPublicKeyAtTime", station_id, timestamp, block=block))

    def station_id_from(self, receipt: dict) -> int:
        """The station id of an ``addStation`` receipt."""
        events = self.contract.events.StationRegistered().process_receipt(receipt, errors=DISCARD)
        if not events:
            raise EVNetworkError("receipt holds no StationRegistered event")
        return events[0]["args"]["stationId"]


class Token(_Wrapper):
    """An ERC-20 deposit token; permit and mint are used when the token has them."""

    def __init__(self, w3: Web3, address: str, sender: TxSender | None = None, abi_name: str = "EVToken") -> None:
        super().__init__(w3, address, abi_name, sender)

    def with_sender(self, sender: TxSender) -> Token:
        return Token(self.w3, self.address, sender)

    def balance_of(self, account: str) -> int:
        return self._view("balanceOf", account)

    def allowance(self, owner: str, spender: str) -> int:
        return self._view("allowance", owner, spender)

    def total_supply(self) -> int:
        return self._view("totalSupply")

    def symbol(self) -> str:
        return self._view("symbol")

    def decimals(self) -> int:
        return self._view("decimals")

    def supports_permit(self) -> bool:
        """Whether the token answers EIP-2612's nonces() and DOMAIN_SEPARATOR()."""
        try:
            self._view("DOMAIN_SEPARATOR")
            self._view("nonces", self.address)
            return True
        except Exception:
            return False

    def approve(self, spender: str, amount: int, *, wait: bool = True) -> Any:
        return self._send(self._fn("approve", spender, amount), wait)

    def transfer(self, to: str, amount: int, *, wait: bool = True) -> Any:
        return self._send(self._fn("transfer", to, amount), wait)

    def mint(self, to: str, amount: int, *, wait: bool = True) -> Any:
        return self._send(self._fn("mint", to, amount), wait)

    def sign_permit(self, owner_key: Any, spender: str, value: int, deadline: int) -> tuple[int, int, bytes, bytes]:
        """EIP-2612 permit signed by ``owner_key`` (a LocalAccount): (deadline, v, r, s)."""
        _, name, version, chain_id, verifying_contract, _, _ = self._view("eip712Domain")
        nonce = self._view("nonces", owner_key.address)
        message = encode_typed_data(
            domain_data={
                "name": name,
                "version": version,
                "chainId": chain_id,
                "verifyingContract": verifying_contract,
            },
            message_types={
                "Permit": [
                    {"name": "owner", "type": "address"},
                    {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ]
            },
            message_data={
                "owner": owner_key.address,
                "spender": Web3.to_checksum_address(spender),
                "value": value,
                "nonce": nonce,
                "deadline": deadline,
            },
        )
        signed = owner_key.sign_message(message)
        return deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
