"""Our OCPI 2.2.1 endpoints as the eMSP (Starlette), for the CSMS to call.

Under ``public_url``'s path: ``/versions``, ``/2.2.1`` (version details), and the 2.2.1 modules:
credentials (SENDER), locations / tariffs / sessions / cdrs (RECEIVER), commands (SENDER: the
CommandResults POSTed to our ``response_url``), tokens (SENDER: paginated GET, real-time authorization).
How every request is handled (token B, envelope, status codes, headers): :mod:`.handling`; the module
handlers: :mod:`.receivers`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp

from core_client.ocpi.credentials import Handshake
from core_client.ocpi.handling import Call, Fault, Handler, Handling, NormalizePath, Reply
from core_client.ocpi.inbox import OcpiInbox
from core_client.ocpi.mirror import Mirror
from core_client.ocpi.models import Credentials, Endpoint, VersionDetails
from core_client.ocpi.models.enums import InterfaceRole, ModuleID
from core_client.ocpi.receivers import Receivers
from core_client.ocpi.registration import RegistrationStore
from core_client.ocpi.settings import OcpiSettings, PartySettings
from core_client.ocpi.transport import VERSION, StatusCode

# our interfaces: (module, role, path under /2.2.1). The tokens URL ends in "/": 2.2.1 writes the
# authorization URL as {tokens_endpoint_url}{token_uid}/authorize (a peer that adds a "/" of its own is
# served too: "//" counts as "/").
OUR_ENDPOINTS = [
    (ModuleID.CREDENTIALS, InterfaceRole.SENDER, "credentials"),
    (ModuleID.LOCATIONS, InterfaceRole.RECEIVER, "locations"),
    (ModuleID.TARIFFS, InterfaceRole.RECEIVER, "tariffs"),
    (ModuleID.SESSIONS, InterfaceRole.RECEIVER, "sessions"),
    (ModuleID.CDRS, InterfaceRole.RECEIVER, "cdrs"),
    (ModuleID.COMMANDS, InterfaceRole.SENDER, "commands"),
    (ModuleID.TOKENS, InterfaceRole.SENDER, "tokens/"),
]


class OcpiServer:
    """Our endpoints: what they accept, and to whom they hand what the CSMS sends."""

    def __init__(self, settings: OcpiSettings, store: RegistrationStore, mirror: Mirror, inbox: OcpiInbox) -> None:
        self.settings = settings
        self.handling = Handling(settings, store)
        self.handshake = Handshake(settings, store)
        self.receivers = Receivers(settings, mirror, inbox)

    async def versions(self, call: Call) -> Reply:
        return versions(self.settings)

    async def details(self, call: Call) -> Reply:
        return details(self.settings, OUR_ENDPOINTS)

    async def credentials(self, call: Call) -> Reply:
        """GET: ours; POST: 405 (registered already: we started the handshake); PUT: the CSMS's new
        credentials (its API read again, a new token B for it); DELETE: the CSMS unregistered us."""
        if call.method == "GET":
            token_b = call.registration.token_b
            return Reply(self.handshake.our_credentials(token_b.get_secret_value() if token_b else "").to_json())
        if call.method == "POST":
            raise Fault(405, StatusCode.CLIENT_ERROR, "already registered: PUT updates the credentials")
        if not call.registration.registered:
            raise Fault(405, StatusCode.CLIENT_ERROR, "not registered")
        if call.method == "PUT":  # an OcpiError reading the CSMS's endpoints is answered 3001
            return Reply((await self.handshake.accept_update(call.model(Credentials))).to_json())
        self.handshake.accept_delete()
        return Reply()

    def app(self) -> ASGIApp:
        """The ASGI application (paths under ``public_url``'s path; ``//`` and a trailing ``/`` tolerated)."""
        modules = self.receivers.routes(self.handling.endpoint, f"{self.settings.base_path}/{VERSION}")
        return platform_app(self.settings, self.handling, (self.versions, self.details, self.credentials), modules)


def versions(settings: PartySettings) -> Reply:
    """GET versions: the one version we speak."""
    return Reply([{"version": VERSION, "url": settings.details_endpoint}])


def details(settings: PartySettings, ours: list[tuple[ModuleID, InterfaceRole, str]]) -> Reply:
    """GET 2.2.1: our endpoints ``ours`` (module, role, path under /2.2.1)."""
    endpoints = [
        Endpoint(identifier=module.value, role=role, url=settings.url(VERSION, path)) for module, role, path in ours
    ]
    return Reply(VersionDetails(version=VERSION, endpoints=endpoints).to_json())


def platform_app(
    settings: PartySettings, handling: Handling, configuration: tuple[Handler, Handler, Handler], modules: list[Route]
) -> ASGIApp:
    """One platform's endpoints under ``public_url``'s path: versions, details and credentials
    (``configuration``, without routing headers), then the ``modules``; ``//`` and a trailing ``/`` tolerated."""
    base, wrap = settings.base_path, handling.endpoint
    versions_handler, details_handler, credentials_handler = configuration
    app = Starlette(
        routes=[
            Route(f"{base}/versions", wrap(versions_handler, functional=False), methods=["GET"]),
            Route(f"{base}/{VERSION}", wrap(details_handler, functional=False), methods=["GET"]),
            Route(
                f"{base}/{VERSION}/credentials",
                wrap(credentials_handler, functional=False),
                methods=["GET", "POST", "PUT", "DELETE"],
            ),
            *modules,
        ],
        exception_handlers={HTTPException: handling.http_error},
    )
    return NormalizePath(app)
