"""Settings of proxy mode: the ``[upstream]`` section of the Core Client config (see docs/operations.md, "Two modes").

Example::

    [upstream]
    url = "wss://csms.example.com/ocpp/{cp_id}"   # {cp_id}: the charge point's id, URL-quoted
    pass_through = true                          # present each charge point's own password upstream
    outbox = "upstream-outbox.sqlite"
    [upstream.credentials]                       # or: a password per charge point (wins over pass_through)
    "CP-1" = "its password at the CSMS"
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core_client.storage.database import Location


class OfflineIdTags(str, Enum):
    """How an idTag that is not an EV Network tag is answered while the CSMS cannot be asked."""

    ACCEPT = "accept"  # like a charge point's AllowOfflineTxForUnknownId: charge now, the CSMS judges later
    REJECT = "reject"  # Invalid: nobody charges on the CSMS's cards while it is down


class UpstreamSettings(BaseModel):
    """Where the CPO's CSMS is and how the Core Client talks to it for each charge point."""

    model_config = ConfigDict(extra="forbid")

    url: str
    credentials: dict[str, str] = Field(default_factory=dict)
    pass_through: bool = False
    outbox: Location = Path("upstream-outbox.sqlite")  # a SQLite file (may be the database's), or postgresql://...
    offline_id_tags: OfflineIdTags = OfflineIdTags.ACCEPT
    response_timeout_s: float = Field(10, gt=0)  # a charge point waits this long for the CSMS, then is answered locally
    resend_after_s: float = Field(60, gt=0)  # a queued CALL sent but unanswered this long: reconnect, send again
    connect_timeout_s: float = Field(10, gt=0)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(60, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError("the CSMS's URL starts with ws:// or wss://")
        return url

    @model_validator(mode="after")
    def _check_backoff(self) -> UpstreamSettings:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self

    def url_for(self, cp_id: str) -> str:
        """The CSMS's URL for ``cp_id``: ``{cp_id}`` in the template replaced, else the id appended as a path segment."""
        segment = quote(cp_id, safe="")
        if "{cp_id}" in self.url:
            return self.url.replace("{cp_id}", segment)
        return self.url.rstrip("/") + "/" + segment

    def password_for(self, cp_id: str, own_password: str | None) -> str | None:
        """The password to present upstream for ``cp_id``: its configured one, else (pass-through) the
        charge point's own, else None (no Authorization header)."""
        if cp_id in self.credentials:
            return self.credentials[cp_id]
        return own_password if self.pass_through else None
