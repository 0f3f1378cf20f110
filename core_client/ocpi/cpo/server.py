"""Our OCPI 2.2.1 endpoints as the CPO (Starlette), for roaming eMSPs and hubs to call.

Under ``public_url``'s path: ``/versions``, ``/2.2.1`` (version details) and the 2.2.1 modules we serve
as the CPO: credentials (RECEIVER), locations and tariffs (SENDER), commands and tokens (RECEIVER). Request handling (token, envelope, status codes, headers): :mod:`.handling`."""

from __future__ import annotations

from starlette.types import ASGIApp

from core_client.ocpi.cpo.commands import CommandReceiver
from core_client.ocpi.cpo.credentials import EmspRegistrations
from core_client.ocpi.cpo.handling import CpoHandling, caller
from core_client.ocpi.cpo.modules import Catalog, SenderModules, StationSource
from core_client.ocpi.cpo.peers import PeerStore
from core_client.ocpi.cpo.roaming import Roaming
from core_client.ocpi.cpo.settings import CpoSettings
from core_client.ocpi.cpo.token_store import TokenStore
from core_client.ocpi.cpo.tokens import TokenReceiver
from core_client.ocpi.handling import Call, Reply
from core_client.ocpi.models import Credentials
from core_client.ocpi.models.enums import InterfaceRole, ModuleID
from core_client.ocpi.server import details, platform_app, versions
from core_client.ocpi.transport import VERSION

# our interfaces as the CPO: (module, role, path under /2.2.1)
OUR_ENDPOINTS = [
    (ModuleID.CREDENTIALS, InterfaceRole.RECEIVER, "credentials"),
    (ModuleID.LOCATIONS, InterfaceRole.SENDER, "locations"),
    (ModuleID.TARIFFS, InterfaceRole.SENDER, "tariffs"),
    (ModuleID.COMMANDS, InterfaceRole.RECEIVER, "commands"),
    (ModuleID.TOKENS, InterfaceRole.RECEIVER, "tokens"),
]


class CpoServer:
    """Our CPO endpoints for the eMSPs in ``peers``."""

    def __init__(
        self,
        settings: CpoSettings,
        peers: PeerStore,
        source: StationSource,
        roaming: Roaming | None = None,
        tokens: TokenStore | None = None,
    ) -> None:
        self.settings = settings
        self.handling = CpoHandling(settings, peers)
        self.registrations = EmspRegistrations(settings, peers)
        catalog = Catalog(settings, source)
        self.senders = SenderModules(settings, catalog)
        self.commands = CommandReceiver(catalog, roaming)
        self.tokens = None if tokens is None else TokenReceiver(tokens)

    async def versions(self, call: Call) -> Reply:
        return versions(self.settings)

    async def details(self, call: Call) -> Reply:
        served = [e for e in OUR_ENDPOINTS if e[0] is not ModuleID.TOKENS or self.tokens is not None]
        return details(self.settings, served)

    async def credentials(self, call: Call) -> Reply:
        who = caller(call)
        if call.method == "GET":
            return Reply(self.registrations.current(who).to_json())
        if call.method == "POST":
            return Reply((await self.registrations.register(who, call.model(Credentials))).to_json())
        if call.method == "PUT":
            return Reply((await self.registrations.update(who, call.model(Credentials))).to_json())
        self.registrations.unregister(who)
        return Reply()

    def app(self) -> ASGIApp:
        """The ASGI application (paths under ``public_url``'s path)."""
        prefix = f"{self.settings.base_path}/{VERSION}"
        wrap = self.handling.endpoint
        modules = self.senders.routes(wrap, prefix) + self.commands.routes(wrap, prefix)
        modules += [] if self.tokens is None else self.tokens.routes(wrap, prefix)
        return platform_app(self.settings, self.handling, (self.versions, self.details, self.credentials), modules)
