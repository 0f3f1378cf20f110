"""Config sections of the Core Client's two HTTP front ends, both off unless configured:

    [live]                      # core_client.live: the drivers' live session data, public station list
    host = "0.0.0.0"
    port = 9002
    requests_per_minute = 120   # per client address

    [dashboard]                 # core_client.web: the CPO's dashboard
    port = 9003
    password = "sha256:<hex>"   # or the password itself; hash_password() makes the sha256 form

The integrator adds them to :class:`core_client.config.Settings` as ``live: LiveSettings | None = None``
and ``dashboard: DashboardSettings | None = None``.
"""

from __future__ import annotations

import hmac

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core_client.config import hash_password


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
