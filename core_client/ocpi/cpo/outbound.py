"""One request of ours to a registered eMSP's platform (with its token B, our party as sender, its first
party as receiver); OcpiError when it is refused or unreachable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core_client.ocpi.client import Answer, OcpiClient
from core_client.ocpi.cpo.peers import Peer
from core_client.ocpi.cpo.settings import CpoSettings


async def send_to(
    settings: CpoSettings,
    peer: Peer,
    method: str,
    url: str,
    body: Any,
    *,
    timeout_s: float | None = None,
    params: Mapping[str, str] | None = None,
) -> Answer:
    """The eMSP's answer (``timeout_s``: the request's whole budget, default ``request_timeout_s``)."""
    parties = peer.parties()
    async with OcpiClient(
        timeout_s=timeout_s or settings.request_timeout_s, encoding=settings.token_encoding, sender=settings.party
    ) as client:
        receiver = parties[0] if parties else None
        return await client.request(method, url, peer.their_token(), body=body, params=params, receiver=receiver)
