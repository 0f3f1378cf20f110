"""The eMSPs' Token lists pulled from their Tokens SENDER (mod_tokens "Pull model"): GET {tokens}, page by
page (offset / limit, following ``Link rel="next"``; :meth:`~core_client.ocpi.client.OcpiClient.get_all`).
The first pull of an eMSP takes its whole list and forgets its Tokens the list no longer has; each later
one, every ``tokens_pull_s``, asks only for what changed since the last began (``date_from``). A Token
that is not 2.2.1, or names a party that is not the eMSP's, is skipped (logged); a pull that fails is
tried again on the next round. Pushes (:mod:`.tokens`) keep the Tokens current in between."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from core_client.ocpi.client import OcpiClient, parse
from core_client.ocpi.cpo.peers import Peer, PeerStore
from core_client.ocpi.cpo.settings import CpoSettings
from core_client.ocpi.cpo.token_store import TokenStore
from core_client.ocpi.errors import OcpiError
from core_client.ocpi.models import Token
from core_client.ocpi.models.base import format_datetime
from core_client.ocpi.models.enums import InterfaceRole, ModuleID
from core_client.ocpi.transport import Party
from core_client.storage.store import Store

log = logging.getLogger("core_client.ocpi")
META_KEY = "ocpi_cpo_tokens_from:"  # + the eMSP's name: when its last successful pull began (its next date_from)


class TokenPull:
    """Pulls the Token lists of the eMSPs in ``peers`` into ``tokens``."""

    def __init__(self, settings: CpoSettings, peers: PeerStore, tokens: TokenStore, store: Store) -> None:
        self.settings, self.peers, self.tokens, self.store = settings, peers, tokens, store
        self._tried: dict[str, float] = {}  # eMSP -> when (monotonic) its last pull was tried

    async def round(self) -> None:
        """Pull the lists that are due: never pulled since we started, or pulled ``tokens_pull_s`` ago."""
        for peer in self.peers.all():
            tried = self._tried.get(peer.name)
            due = tried is None or time.monotonic() - tried >= self.settings.tokens_pull_s
            if peer.registered and due and peer.endpoint(ModuleID.TOKENS, InterfaceRole.SENDER):
                self._tried[peer.name] = time.monotonic()
                await self.pull(peer)

    async def pull(self, peer: Peer) -> int | None:
        """Pull the eMSP's list (what changed since its last pull); how many Tokens were taken (None: failed)."""
        url = peer.endpoint(ModuleID.TOKENS, InterfaceRole.SENDER)
        if url is None:
            return None
        since = self.store.meta(META_KEY + peer.name)
        began = datetime.now(timezone.utc)
        params = {} if since is None else {"date_from": since}
        received: list[Token] = []
        parties = peer.parties()
        try:
            async with OcpiClient(
                timeout_s=self.settings.request_timeout_s,
                encoding=self.settings.token_encoding,
                sender=self.settings.party,
            ) as client:
                receiver = parties[0] if parties else None
                async for page in client.get_all(url, peer.their_token(), params=params, receiver=receiver):
                    received += [t for t in (self._token(peer, item) for item in page) if t is not None]
        except OcpiError as error:
            log.warning("OCPI Tokens of eMSP %s not pulled (again next round): %s", peer.name, error)
            return None
        for token in received:
            self.tokens.put(peer.name, token)
        forgotten = self.tokens.keep_only(peer.name, received) if since is None else 0
        self.store.set_meta(META_KEY + peer.name, format_datetime(began.replace(microsecond=0)))
        log.info(
            "OCPI Tokens of eMSP %s pulled%s: %d taken, %d forgotten",
            peer.name, "" if since is None else f" since {since}", len(received), forgotten,
        )  # fmt: skip
        return len(received)

    @staticmethod
    def _token(peer: Peer, item: object) -> Token | None:
        try:
            token = parse(Token, item, f"a Token of eMSP {peer.name}")
        except OcpiError as error:
            log.warning("OCPI %s: skipped", error)
            return None
        if not peer.owns(Party(token.country_code, token.party_id)):
            log.warning("OCPI Token %s of %s/%s is not eMSP %s's: skipped", token.uid, token.country_code,
                        token.party_id, peer.name)  # fmt: skip
            return None
        return token
