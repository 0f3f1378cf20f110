"""Config sections of the Core Client's two HTTP front ends, both off unless configured:

    [live]                      # core_client.live_api: the drivers' live session data, public station list
    host = "0.0.0.0"
    port = 9002
    requests_per_minute = 120   # per client address

    [dashboard]                 # core_client.web: the CPO's dashboard
    port = 9003
    password = "sha256:<hex>"   # or the password itself; hash_password() makes the sha256 form

The integrator adds them to :class:`core_client.config.Settings` as ``live: LiveSettings | None = None``
and ``dashboard: DashboardSettings | None = None``. Until then they live in a file of their own, read by
:func:`load_web_settings` for ``python -m core_client.web`` (which serves both next to the daemon).
"""

from __future__ import annotations

import hmac
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core_client.config import ConfigError, hash_password

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class LiveSettings(BaseModel):
    """``[live]``: GET /sessions/{id}/live (the session's driver only, signed request) and GET /stations."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(9002, ge=0, le=65535)
    requests_per_minute: int = Field(120, ge=1)
    max_validity_s: int = Field(300, ge=10, le=3600)  # how far in the future a signed request may expire
    poll_interval_s: float = Field(1.0, gt=0)  # how often the event stream looks for new readings


class DashboardSettings(BaseModel):
    """``[dashboard]``: the CPO's dashboard, behind a password."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(9003, ge=0, le=65535)
    password: str = Field(min_length=1)
    idle_timeout_s: int = Field(1800, ge=60)  # a login ends after this long without a request

    @field_validator("password")
    @classmethod
    def _check_password(cls, value: str) -> str:
        if value.startswith("sha256:") and len(value) != 7 + 64:
            raise ValueError("dashboard password: 'sha256:' must be followed by 64 hex digits")
        return value

    def check_password(self, password: str) -> bool:
        """Whether ``password`` is the configured one (constant-time compare)."""
        expected = self.password.lower() if self.password.startswith("sha256:") else hash_password(self.password)
        return hmac.compare_digest(hash_password(password), expected)


def load_web_settings(path: str | Path) -> tuple[LiveSettings | None, DashboardSettings | None]:
    """The ``[live]`` and ``[dashboard]`` sections of a TOML file (each None when absent)."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"web config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    unknown = set(values) - {"live", "dashboard"}
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)} (only [live] and [dashboard])")
    try:
        live = LiveSettings.model_validate(values["live"]) if "live" in values else None
        dashboard = DashboardSettings.model_validate(values["dashboard"]) if "dashboard" in values else None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid web configuration in {path}: {problems}") from None
    return live, dashboard
