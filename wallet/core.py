"""The EV Wallet library: one driver account on one EV Network deployment.

    wallet = Wallet(w3, deployment, account)
    quote = wallet.quote(station_id, energy_wh=20_000)
    session_id = wallet.open_session(station_id, connector=1, deposit=quote.total)
    for update in wallet.watch(session_id): ...
    invoice = wallet.invoice(session_id)

Every write is checked before a transaction is sent (balance, station, connector, session state), and
the escrow's custom errors come back as :class:`~wallet.errors.WalletError` with a clear message."""

from __future__ import annotations

import threading

from eth_account.signers.local import LocalAccount
from web3 import Web3

from ev_network.contracts import Escrow, Operator, Station, Token
from ev_network.deployment import Deployment
from ev_network.devaccounts import ANVIL_CHAIN_ID
from ev_network.errors import ContractRevert, ValueOutOfRange, chain_errors
from ev_network.pricing import breakdown
from ev_network.tx import TxSender, call_view
from wallet.errors import InsufficientBalance, StationUnavailable, WalletError
from wallet.models import OpenResult, Quote, StationView, TariffView, TokenInfo
from wallet.reverts import explain_revert
from wallet.session_actions import SessionActions
from wallet.tracking import SessionTracker
from wallet.units import format_amount

MINTER_ROLE = Web3.keccak(text="MINTER_ROLE")
MAX_DEPOSIT = 2**96 - 1  # the escrow stores deposits as uint96
PERMIT_VALIDITY_S = 3600


STANDING_ALLOWANCE = 2**256 - 1  # the ERC-20 "unlimited" value: the token never decrements it
MIN_GAS_WEI = 10**15  # below this an account cannot pay for an open (about 0.001 ether)
DEV_GAS_GIFT_WEI = 10**18


class Wallet(SessionActions):
    """A driver's account on the EV Network: balance, stations, quotes and sessions."""

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        account: LocalAccount | str,
        *,
        poll_interval: float = 1.0,
        standing_allowance: bool = True,
    ) -> None:
        """``account`` is an unlocked LocalAccount, or just an address for a read-only wallet (balance,
        stations, quotes, status, history, invoices; every write then raises WalletError).

        ``standing_allowance``: the first open gives the escrow an unlimited allowance (in its permit, or
        one approve), so later opens need neither: every later session costs about 50,000 gas less. The
        escrow only pulls tokens from the caller of ``open`` for its own deposit, so no one else can
        use it. False: permit or approve exactly each deposit."""
        self.w3 = w3
        self.deployment = deployment
        self.account: LocalAccount | None = None if isinstance(account, str) else account
        self.address: str = Web3.to_checksum_address(account if isinstance(account, str) else account.address)
        self.poll_interval = poll_interval
        self.standing_allowance = standing_allowance
        self.sender = TxSender(w3, self.account) if self.account is not None else None
        self.escrow = Escrow(w3, deployment, self.sender)
        self.token = Token(w3, deployment.token, self.sender)
        self.tracker = SessionTracker(w3, deployment, self.escrow, self.address)
        self._token_info: TokenInfo | None = None
        self._permit: bool | None = None
        self._operators: dict[str, Operator] = {}
        # Opens are serialised: concurrent opens would read the same permit nonce (or allowance)
        # and all but one would fail on chain.
        self._open_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the account object (it holds the key)
        return f"Wallet({self.address} on chain {self.deployment.chain_id})"

    # ------------------------------------------------------------------ token
    @property
    def token_info(self) -> TokenInfo:
        """Symbol and decimals of the deposit token (read once)."""
        if self._token_info is None:
            self._token_info = TokenInfo(
                address=self.token.address, symbol=self.token.symbol(), decimals=self.token.decimals()
            )
        return self._token_info

    def fmt(self, units: int) -> str:
        """``units`` as whole tokens with the symbol, e.g. ``12.50 EVE``."""
        return f"{format_amount(units, self.token_info.decimals)} {self.token_info.symbol}"

    def balance(self) -> int:
        """The account's token balance, in the token's smallest unit."""
        return self.token.balance_of(self.address)

    def gas_balance(self) -> int:
        """The account's balance of the chain's native coin (pays for gas), in wei."""
        with chain_errors(self.w3):
            return self.w3.eth.get_balance(self.address)

    def supports_permit(self) -> bool:
        """Whether the deposit token takes EIP-2612 permits (then a session opens in one transaction)."""
        if self._permit is None:
            self._permit = self.token.supports_permit()
        return self._permit

    def top_up(self, amount: int, minter: LocalAccount) -> str:
        """Mint ``amount`` to this account, signed by ``minter`` (who needs MINTER_ROLE); the tx hash."""
        if amount <= 0:
            raise WalletError("the top-up amount must be more than zero")
        minter_token = Token(self.w3, self.deployment.token, TxSender(self.w3, minter))
        try:
            allowed = call_view(self.token.contract.functions.hasRole(MINTER_ROLE, minter.address))
        except Exception:  # a token without roles (e.g. a test token anyone may mint): let mint decide
            allowed = True
        if not allowed:
            raise WalletError(f"cannot top up: account {minter.address} may not mint {self.token_info.symbol}")
        try:
            receipt = minter_token.mint(self.address, amount)
        except ContractRevert as exc:
            raise explain_revert(exc, "top up") from None
        if self.deployment.chain_id == ANVIL_CHAIN_ID and self.gas_balance() < MIN_GAS_WEI:
            # a dev chain's faucet also pays for gas, so a fresh account can open sessions at once
            minter_token.sender.send_ether(self.address, DEV_GAS_GIFT_WEI)
        return Web3.to_hex(receipt["transactionHash"])

    # --------------------------------------------------------------- stations
    def stations(self) -> list[StationView]:
        """Every registered station with its operator's name, connectors, active flag and tariff."""
        return [self._view(s) for s in self.escrow.stations()]

    def station(self, ref: int | str) -> StationView:
        """A station by id or by OCPP charge point id (a number is tried as a station id first)."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            try:
                return self._view(self.escrow.get_station(int(ref)))
            except ValueOutOfRange:  # not a station id: digits may still be a charge point id
                if isinstance(ref, int):
                    raise StationUnavailable(f"there is no station {ref} (station ids are uint32)") from None
            except ContractRevert as exc:
                if exc.name != "UnknownStation":
                    raise explain_revert(exc, f"read station {ref}") from None
                if isinstance(ref, int):
                    raise StationUnavailable(f"there is no station {ref}") from None
        found = self.escrow.station_by_charge_point(str(ref))
        if found is None:
            raise StationUnavailable(f"there is no station with id or charge point id {ref!r}")
        return self._view(found)

    def quote(
        self, station_id: int | str, energy_wh: int, minutes: float = 0, *, duration_s: int | None = None
    ) -> Quote:
        """What settlement will charge for ``energy_wh`` over ``minutes`` (or exactly ``duration_s`` seconds)
        at the station's current tariff (the escrow's own integer math: time capped at the maximum
        duration). Settlement never charges more than the deposit, so open with at least ``total``."""
        duration = round(minutes * 60) if duration_s is None else duration_s
        if energy_wh < 0 or duration < 0:
            raise WalletError("energy and charging time cannot be negative")
        station = self.station(station_id)
        charge = breakdown(station.tariff.record, energy_wh, duration, max_duration_s=self.deployment.max_duration)
        return Quote(
            station_id=station.station_id,
            charge_point_id=station.charge_point_id,
            tariff_id=station.tariff.tariff_id,
            energy_wh=energy_wh,
            duration_s=duration,
            billed_duration_s=charge.billed_s,
            session_fee=charge.session_fee,
            energy_cost=charge.energy,
            time_cost=charge.time,
            total=charge.total,
        )

    # --------------------------------------------------------------- sessions
    def open(self, station_id: int | str, connector: int, deposit: int) -> OpenResult:
        """Open a session: checks balance, station and connector before sending anything; then opens
        with the allowance already given, else with a permit, else approves and opens (see
        ``standing_allowance`` for how much the permit or approve allows)."""
        self._require_key("open a session")
        if deposit <= 0:
            raise WalletError("the deposit must be more than zero")
        if deposit > MAX_DEPOSIT:
            raise WalletError(f"a deposit of {self.fmt(deposit)} is more than the escrow can hold")
        station = self.station(station_id)
        sid = station.station_id
        if not station.active:
            raise StationUnavailable(f"station {sid} ({station.charge_point_id}) is not taking sessions (inactive)")
        if not 1 <= connector <= station.connectors:
            raise StationUnavailable(
                f"station {sid} ({station.charge_point_id}) has connectors 1 to {station.connectors}, not {connector}"
            )
        balance = self.balance()
        if balance < deposit:
            raise InsufficientBalance(
                f"deposit {self.fmt(deposit)} is more than the balance {self.fmt(balance)} of {self.address}: "
                "top up first (ev-wallet topup)"
            )
        if self.gas_balance() < MIN_GAS_WEI:
            raise InsufficientBalance(
                f"{self.address} has no ether to pay the transaction fee (gas): ask your MSP to fund it "
                "(on a local dev chain, `ev-wallet topup` does)"
            )
        with self._open_lock:
            return self._open_checked(station, connector, deposit)

    def _open_checked(self, station: StationView, connector: int, deposit: int) -> OpenResult:
        sid = station.station_id
        escrow_address = self.deployment.escrow
        approve_tx = None
        try:
            if self.token.allowance(self.address, escrow_address) >= deposit:
                method = "allowance"
                receipt = self.escrow.open(sid, connector, deposit)
            elif self.supports_permit():
                method = "permit"
                deadline = self.tracker.chain_time() + PERMIT_VALIDITY_S
                allowance = STANDING_ALLOWANCE if self.standing_allowance else deposit
                permit = self.token.sign_permit(self._require_key("sign a permit"), escrow_address, allowance, deadline)
                receipt = self.escrow.open_with_permit(sid, connector, deposit, permit, allowance=allowance)
            else:
                method = "approve"
                allowance = STANDING_ALLOWANCE if self.standing_allowance else deposit
                approve_tx = Web3.to_hex(self.token.approve(escrow_address, allowance)["transactionHash"])
                receipt = self.escrow.open(sid, connector, deposit)
        except ContractRevert as exc:
            raise explain_revert(exc, f"open a session at station {sid}") from None
        return OpenResult(
            session_id=self.escrow.session_id_from(receipt),
            station_id=sid,
            connector=connector,
            deposit=deposit,
            method=method,
            open_tx=Web3.to_hex(receipt["transactionHash"]),
            approve_tx=approve_tx,
        )

    def open_session(self, station_id: int | str, connector: int, deposit: int) -> int:
        """:meth:`open`, returning just the session id."""
        return self.open(station_id, connector, deposit).session_id

    # ---------------------------------------------------------------- helpers
    def _view(self, station: Station) -> StationView:
        if station.operator not in self._operators:
            self._operators[station.operator] = self.escrow.operator_of(station.operator)
        operator = self._operators[station.operator]
        tariff = self.escrow.get_tariff(station.tariff_id)
        return StationView(
            station_id=station.station_id,
            charge_point_id=station.charge_point_id,
            operator=station.operator,
            operator_name=operator.name,
            payout=operator.payout,
            connectors=station.connectors,
            active=station.active,
            tariff=TariffView(tariff_id=station.tariff_id, **vars(tariff)),
        )
