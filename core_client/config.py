"""The Core Client's settings: a TOML file, each field overridable by an environment variable.

Precedence: ``EVN_CC_<FIELD>`` environment variables (``EVN_CC_LISTEN_PORT=9100``,
``EVN_CC_RPC_URL=...``; ``EVN_CC_CHARGE_POINTS``, ``EVN_CC_LIVE``, ``EVN_CC_DASHBOARD`` and ``EVN_CC_OCPI``
take a JSON object) win over the file, which wins over the defaults below. Relative paths in the file are resolved
against the file's directory. See ``examples/core-client.toml`` for a commented example.

The daemon's two HTTP front ends have a section each, both off unless given: ``[live]``
(:class:`LiveSettings`: drivers' live session data, public station list) and ``[dashboard]``
(:class:`DashboardSettings`: the CPO's dashboard, behind a password). ``[ocpi]``
(:class:`~core_client.ocpi.settings.OcpiSettings`) connects to the CPO's CSMS over OCPI 2.2.1 as an eMSP;
``[ocpi_cpo]`` (:class:`~core_client.ocpi.cpo.settings.CpoSettings`) serves our stations to roaming eMSPs as their CPO.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the tomli backport
    import tomli as tomllib  # type: ignore[no-redef]
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from core_client.errors import CoreClientError
from core_client.ocpi.cpo.settings import CpoSettings
from core_client.ocpi.settings import OcpiSettings
from core_client.proxy.config import UpstreamSettings
from core_client.storage.database import Location, is_postgres_url

ENV_PREFIX = "EVN_CC_"
JSON_FIELDS = (
    "charge_points",
    "upstream",
    "live",
    "dashboard",
    "ocpi",
    "ocpi_cpo",
)  # given as a JSON object in the environment
PATH_FIELDS = ("deployment_file", "keystore", "database", "tls_cert", "tls_key", "cards_file")
# OCPP's identifierString (a-z A-Z 0-9 * - _ = + | @ .) without ':', which HTTP Basic's user cannot hold
CHARGE_POINT_ID = re.compile(r"[A-Za-z0-9*\-_=+|@.]{1,48}")
SHA256_PASSWORD = re.compile(r"sha256:[0-9a-fA-F]{64}")


class ConfigError(CoreClientError):
    """A configuration that cannot be loaded (missing file, bad TOML, invalid value)."""


def check_charge_point_id(cp_id: str) -> str:
    """``cp_id`` if a charge point can log in with it (the config and ``stations add`` both check
    it), else ValueError saying why."""
    if not CHARGE_POINT_ID.fullmatch(cp_id):
        raise ValueError(
            f"charge point id {cp_id!r}: 1-48 characters of A-Z a-z 0-9 * - _ = + | @ . (no '/' or ':': "
            "it is the last segment of the URL path and the user name of HTTP Basic auth)"
        )
    return cp_id


def check_password_form(what: str, password: str) -> str:
    """``password`` if it can be configured (the password itself, or ``sha256:`` and 64 hex digits)."""
    if not password:
        raise ValueError(f"{what}: empty password")
    if password.startswith("sha256:") and not SHA256_PASSWORD.fullmatch(password):
        raise ValueError(f"{what}: 'sha256:' must be followed by 64 hex digits")
    return password


def password_matches(expected: str, password: str) -> bool:
    """Whether ``password`` is the configured ``expected`` (itself, or its :func:`hash_password` form);
    constant-time compare."""
    if expected.startswith("sha256:"):
        return hmac.compare_digest(hash_password(password), expected.lower())
    return hmac.compare_digest(password.encode(), expected.encode())


class LiveSettings(BaseModel):
    """``[live]``: GET /sessions/{id}/live (the session's driver only, signed request) and GET /stations."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(9002, ge=0, le=65535)
    requests_per_minute: int = Field(120, ge=1)  # per client address; beyond: 429
    max_validity_s: int = Field(300, ge=10, le=3600)  # how far in the future a signed request may expire
    poll_interval_s: float = Field(1.0, gt=0)  # how often an event stream looks for new readings
    max_streams_per_session: int = Field(4, ge=1)  # open event streams of one session (any address); beyond: 429
    max_streams: int = Field(200, ge=1)  # open event streams in all; beyond: 503
    request_timeout_s: float = Field(10, gt=0)  # a request not all in by then (slow or half sent): dropped


class DashboardSettings(BaseModel):
    """``[dashboard]``: the CPO's dashboard, behind a password."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(9003, ge=0, le=65535)
    password: str  # the password itself, or "sha256:<hex>" (hash_password)
    idle_timeout_s: int = Field(1800, ge=60)  # a login ends after this long without a request
    request_timeout_s: float = Field(10, gt=0)  # a request not all in by then (slow or half sent): dropped

    @field_validator("password")
    @classmethod
    def _check_password(cls, value: str) -> str:
        return check_password_form("dashboard password", value)

    def check_password(self, password: str) -> bool:
        """Whether ``password`` is the dashboard's (constant-time compare)."""
        return password_matches(self.password, password)


class Settings(BaseModel):
    """Everything the daemon needs to run one CPO's Core Client."""

    model_config = ConfigDict(extra="forbid")

    listen_host: str = "127.0.0.1"
    listen_port: int = Field(9000, ge=0, le=65535)
    control_host: str = "127.0.0.1"
    control_port: int = Field(9001, ge=0, le=65535)
    rpc_url: str = "http://127.0.0.1:8545"
    deployment_file: Path = Path("deployments/local.json")
    keystore: Path = Path("operator.json")
    password_env: str = "EVN_OPERATOR_PASSWORD"
    database: Location = Path("core-client.sqlite")  # a SQLite file, or postgresql://... (several instances)
    charge_points: dict[str, str] = Field(default_factory=dict)
    budget_margin: float = Field(0.02, ge=0, lt=1)
    max_power_kw: float = Field(350, gt=0, le=1e6)  # the most a connector delivers: readings beyond are not trusted
    start_timeout_s: float = Field(60, gt=0)
    batch_max: int = Field(20, ge=1, le=200)
    settle_batch_window_s: float = Field(0.3, ge=0)
    poll_interval_s: float = Field(0.5, gt=0)
    confirmations: int = Field(0, ge=0)
    start_block: int | None = None
    reconnect_grace_s: float = Field(15, ge=0)
    reconcile_poll_s: float = Field(0.5, gt=0)  # the reconcile pass without a wake-up (core_client.sessions.reconcile)
    ocpp_response_timeout_s: float = Field(20, gt=0)
    heartbeat_interval_s: int = Field(300, gt=0)
    ocpp_compression: bool = True  # permessage-deflate with charge points that offer it; False: never
    rpc_timeout_s: float = Field(5, gt=0)
    fee_bump_after_s: float = Field(
        60, ge=0
    )  # a transaction unmined this long is re-sent with 12.5% more fee; 0: never
    max_fee_per_gas_gwei: float | None = Field(None, gt=0)  # no bump beyond this fee (None: no cap)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    control_token: str | None = Field(None, min_length=16)
    anchor_every_records: int = Field(1000, ge=1)
    anchor_interval_s: float = Field(600, gt=0)
    upstream: UpstreamSettings | None = None  # proxy mode: the CPO's CSMS (core_client.proxy.relay)
    live: LiveSettings | None = None
    dashboard: DashboardSettings | None = None
    ocpi: OcpiSettings | None = None  # OCPI mode: the CPO's CSMS as an eMSP sees it (core_client.ocpi)
    ocpi_cpo: CpoSettings | None = None  # our stations for roaming eMSPs, as their CPO (core_client.ocpi.cpo)
    cards_file: Path | None = None  # RFID cards: drivers' grants, one per line (core_client.chain.mandates)
    cards_poll_s: float = Field(2, gt=0)  # how often the granted mandates are read again from chain

    @field_validator("charge_points")
    @classmethod
    def _check_charge_points(cls, value: dict[str, str]) -> dict[str, str]:
        for cp_id, password in value.items():
            check_charge_point_id(cp_id)
            check_password_form(f"charge point {cp_id}", password)
        return value

    @field_validator("rpc_url")
    @classmethod
    def _check_rpc_url(cls, value: str) -> str:
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL of a JSON-RPC node")
        return value

    @property
    def control_token_file(self) -> Path:
        """Where the daemon keeps its control token when ``control_token`` is not set: next to the
        database file, or to the keystore when the database is on a PostgreSQL server."""
        beside = self.keystore if isinstance(self.database, str) else self.database
        return beside.with_name(beside.name + ".control-token")

    @property
    def tls(self) -> bool:
        """True when charge points connect with wss:// (OCPP security profile 2)."""
        return self.tls_cert is not None

    def check_password(self, cp_id: str, password: str) -> bool:
        """Whether ``password`` is the configured one of ``cp_id`` (constant-time compare)."""
        expected = self.charge_points.get(cp_id)
        return expected is not None and password_matches(expected, password)


def control_token(settings: Settings, create: bool = False) -> str | None:
    """The control endpoint's token: ``control_token`` if set, else the one in
    :attr:`Settings.control_token_file` (a new random one, mode 0600, when ``create`` and there is none)."""
    if settings.control_token:
        return settings.control_token
    path = settings.control_token_file
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        if not create:
            return None
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile
        return path.read_text().strip()
    except OSError as error:
        raise ConfigError(f"cannot write the control token file {path}: {error.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def hash_password(password: str) -> str:
    """The ``sha256:<hex>`` form of a password (a charge point's, the dashboard's), for the config file."""
    return "sha256:" + hashlib.sha256(password.encode()).hexdigest()


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Field values given as ``EVN_CC_<FIELD>`` environment variables."""
    environ = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        if name in JSON_FIELDS and raw != "":
            try:
                values[name] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be a JSON object: {exc}") from None
        elif (
            name
            in (
                "start_block",
                "tls_cert",
                "tls_key",
                "control_token",
                "live",
                "dashboard",
                "ocpi",
                "ocpi_cpo",
                "cards_file",
            )
            and raw == ""
        ):
            values[name] = None
        else:
            values[name] = raw
    return values


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Settings from the TOML file at ``path`` (optional) and the environment."""
    values: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} not found (see examples/core-client.toml)")
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        base = path.resolve().parent
        nested = [
            (values.get("upstream"), "outbox"),
            (values.get("ocpi"), "registration_file"),
            (values.get("ocpi"), "token_a_file"),
            (values.get("ocpi_cpo"), "peers_file"),
        ]
        for table, name in [(values, n) for n in PATH_FIELDS] + nested:
            relative = isinstance(table, dict) and isinstance(table.get(name), str) and not is_postgres_url(table[name])
            if relative and not Path(table[name]).expanduser().is_absolute():
                table[name] = os.path.normpath(base / table[name])
    values.update(env_overrides(environ))
    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError("tls_cert and tls_key go together: set both (wss://) or neither (ws://)")
    if settings.ocpi is not None and isinstance(settings.database, str) and settings.ocpi.registration_file is None:
        raise ConfigError(
            "[ocpi] registration_file must be set with a postgresql:// database (the CSMS's tokens stay in a file, "
            "mode 0600, not in the database)"
        )
    if settings.ocpi_cpo is not None and isinstance(settings.database, str) and settings.ocpi_cpo.peers_file is None:
        raise ConfigError(
            "[ocpi_cpo] peers_file must be set with a postgresql:// database (the eMSPs' tokens stay in a file, "
            "mode 0600, not in the database)"
        )
    if settings.ocpi is not None and settings.ocpi.session_pull_after_s >= settings.start_timeout_s:
        raise ConfigError(
            f"[ocpi] session_pull_after_s ({settings.ocpi.session_pull_after_s:g} s) must be less than "
            f"start_timeout_s ({settings.start_timeout_s:g} s): the pull comes before a start times out"
        )
    if settings.ocpi is not None and settings.ocpi.request_timeout_s >= settings.start_timeout_s:
        raise ConfigError(
            f"[ocpi] request_timeout_s ({settings.ocpi.request_timeout_s:g} s) must be less than start_timeout_s "
            f"({settings.start_timeout_s:g} s): a START_SESSION is retried that long, and must reach the CSMS "
            "(or fail) before its start times out"
        )
    for name in PATH_FIELDS:
        value = getattr(settings, name)
        if isinstance(value, Path):
            setattr(settings, name, value.expanduser())
    if settings.upstream is not None and isinstance(settings.upstream.outbox, Path):
        settings.upstream.outbox = settings.upstream.outbox.expanduser()
    if settings.ocpi is not None and settings.ocpi.registration_file is not None:
        settings.ocpi.registration_file = settings.ocpi.registration_file.expanduser()
    if settings.ocpi is not None and settings.ocpi.token_a_file is not None:
        settings.ocpi.token_a_file = settings.ocpi.token_a_file.expanduser()
    if settings.ocpi_cpo is not None and settings.ocpi_cpo.peers_file is not None:
        settings.ocpi_cpo.peers_file = settings.ocpi_cpo.peers_file.expanduser()
    for name in ("tls_cert", "tls_key"):
        value = getattr(settings, name)
        if value is not None and not value.is_file():
            raise ConfigError(f"{name}: no file at {value}")
    return settings


def settings_to_toml(settings: Settings) -> str:
    """A config file that :func:`load_settings` reads back as ``settings`` (paths written absolute
    as given; unset optional fields and sections left out)."""
    values = settings.model_dump(exclude_none=True)
    tables = {name: values.pop(name) for name in JSON_FIELDS if name in values}
    if "upstream" in tables:
        tables["upstream.credentials"] = tables["upstream"].pop("credentials", None)
    lines = _toml_pairs(values)
    for name, table in tables.items():
        if table is not None:
            lines += [f"\n[{name}]", *_toml_pairs(table)]
    return "\n".join(lines) + "\n"


def _toml_pairs(values: dict[str, Any]) -> list[str]:
    """``key = value`` lines (keys quoted; values as :func:`_toml_value` writes them)."""
    return [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in values.items() if v is not None]


def _toml_value(value: Any) -> str:
    """A value in TOML: paths as strings, enums by value, a secret as itself (the file is the operator's
    config), a decimal as a number, a table (e.g. [ocpi_cpo] sites) inline."""
    if isinstance(value, dict):
        return "{" + ", ".join(_toml_pairs(value)) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Path):
        value = str(value)
    elif isinstance(value, SecretStr):
        value = value.get_secret_value()
    return json.dumps(getattr(value, "value", value))
