"""The credentials handshake of 2.2.1 (credentials.asciidoc), with the Core Client as the eMSP that
starts it, and the CSMS's own calls to our credentials endpoint.

- :meth:`Handshake.register`: GET the CSMS's versions with token A, pick 2.2.1, GET its details, check
  the endpoints we need (credentials; locations as SENDER; commands as RECEIVER: without them we send
  no POST, as the text asks), keep a new token B (our endpoints accept it from then on: the CSMS
  calls them during the POST), POST our credentials, keep the token C it returns.
- :meth:`Handshake.update`: the same with PUT and token C: new tokens both ways, endpoints re-read.
- :meth:`Handshake.unregister`: DELETE with token C, then forget both tokens.
- :meth:`Handshake.accept_update` / :meth:`Handshake.accept_delete`: the CSMS's PUT / DELETE to us.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import SecretStr

from core_client.ocpi.client import OcpiClient, parse, parse_list
from core_client.ocpi.errors import OcpiError, OcpiRejected
from core_client.ocpi.models import Credentials, Version, VersionDetails
from core_client.ocpi.models.enums import InterfaceRole, ModuleID
from core_client.ocpi.registration import Registration, RegistrationStore, new_token
from core_client.ocpi.settings import OcpiSettings
from core_client.ocpi.transport import VERSION

# what the bridge cannot work without: (module, the CSMS's interface role; None = any)
REQUIRED = [
    (ModuleID.CREDENTIALS, None),
    (ModuleID.LOCATIONS, InterfaceRole.SENDER),
    (ModuleID.COMMANDS, InterfaceRole.RECEIVER),
]


class Handshake:
    """Registration with one CSMS, kept in ``store``."""

    def __init__(self, settings: OcpiSettings, store: RegistrationStore) -> None:
        self.settings = settings
        self.store = store

    def client(self) -> OcpiClient:
        return OcpiClient(
            timeout_s=self.settings.request_timeout_s, encoding=self.settings.token_encoding, sender=self.settings.party
        )

    def our_credentials(self, token_b: str) -> Credentials:
        """Our credentials object: token B, our versions URL, our eMSP role."""
        return Credentials(token=SecretStr(token_b), url=self.settings.versions_endpoint, roles=[self.settings.role()])

    async def discover(
        self,
        client: OcpiClient,
        versions_url: str,
        token: str,
        required: list[tuple[ModuleID, InterfaceRole | None]] = REQUIRED,
        who: str = "the CSMS",
    ) -> VersionDetails:
        """``who``'s 2.2.1 version details, with the endpoints ``required``; OcpiError saying what is missing."""
        answer = await client.request("GET", versions_url, token)
        versions = parse_list(Version, answer.data, f"GET {versions_url}")
        url = next((v.url for v in versions if v.version == VERSION), None)
        if url is None:
            offered = ", ".join(v.version for v in versions) or "none"
            raise OcpiError(f"{who} at {versions_url} offers OCPI versions {offered}, not {VERSION}")
        details = parse(VersionDetails, (await client.request("GET", url, token)).data, f"GET {url}")
        missing = [
            module.value + ("" if role is None else f" ({role.value})")
            for module, role in required
            if details.endpoint(module, role) is None
        ]
        if missing:
            raise OcpiError(f"{who}'s OCPI {VERSION} lacks endpoints we need: {', '.join(missing)}")
        return details

    async def register(self) -> Registration:
        """The first handshake (POST), with token A (:meth:`OcpiSettings.registration_token`)."""
        existing = self.store.load()
        if existing is not None and existing.registered:
            raise OcpiError(
                f"already registered with {existing.versions_url}: `core-client ocpi update` renews the tokens, "
                "`core-client ocpi unregister` ends it"
            )
        token_a = self.settings.registration_token()
        async with self.client() as client:
            details = await self.discover(client, self.settings.versions_url, token_a)
            token_b = new_token()
            pending = Registration(versions_url=self.settings.versions_url, token_b=SecretStr(token_b))
            pending.endpoints = details.endpoints
            self.store.save(pending)  # from now on our endpoints accept token B: the CSMS calls them now
            try:
                url = details.endpoint(ModuleID.CREDENTIALS, None) or ""
                answer = await client.request("POST", url, token_a, body=self.our_credentials(token_b).to_json())
                theirs = parse(Credentials, answer.data, f"POST {url}")
            except BaseException:
                self.store.delete()
                raise
        pending.token_c = theirs.token
        pending.roles = theirs.roles
        pending.registered_at = datetime.now(timezone.utc)
        self.store.save(pending)
        return pending

    async def update(self) -> Registration:
        """Re-registration (PUT): new token B and C, the CSMS's endpoints read again."""
        registration = self.store.require()
        token_c = registration.their_token()
        async with self.client() as client:
            details = await self.discover(client, registration.versions_url, token_c)
            token_b = new_token()
            registration.token_b_next = SecretStr(token_b)  # the CSMS may call us with it during the PUT
            self.store.save(registration)
            try:
                url = details.endpoint(ModuleID.CREDENTIALS, None) or ""
                answer = await client.request("PUT", url, token_c, body=self.our_credentials(token_b).to_json())
                theirs = parse(Credentials, answer.data, f"PUT {url}")
            except BaseException:
                registration.token_b_next = None
                self.store.save(registration)
                raise
        registration.token_b, registration.token_b_next = SecretStr(token_b), None
        registration.token_c, registration.roles = theirs.token, theirs.roles
        registration.endpoints = details.endpoints
        registration.registered_at, registration.refused = datetime.now(timezone.utc), None
        self.store.save(registration)
        return registration

    async def unregister(self) -> str:
        """DELETE our credentials at the CSMS and forget both tokens; what happened, in one line."""
        registration = self.store.require()
        token_c = registration.their_token()
        url = registration.endpoint(ModuleID.CREDENTIALS, None)
        async with self.client() as client:
            try:
                await client.request("DELETE", url, token_c)
                outcome = f"unregistered from {registration.versions_url}"
            except OcpiRejected as refused:
                if refused.http_status not in (401, 405):
                    raise
                outcome = f"the CSMS no longer knew us (HTTP {refused.http_status}); local credentials removed"
        self.store.delete()
        return outcome

    async def accept_update(self, theirs: Credentials) -> Credentials:
        """The CSMS PUT new credentials to us: read its endpoints again with its new token, give it a new
        token B. OcpiError (answered 3001) when its endpoints cannot be read."""
        registration = self.store.require()
        token_c = theirs.token.get_secret_value()
        async with self.client() as client:
            try:
                details = await self.discover(client, theirs.url, token_c)
            except OcpiError as error:
                raise OcpiError(f"cannot use the CSMS's API: {error}") from None
        token_b = new_token()
        registration.versions_url = theirs.url
        registration.token_b, registration.token_b_next = SecretStr(token_b), None
        registration.token_c, registration.roles = theirs.token, theirs.roles
        registration.endpoints = details.endpoints
        registration.registered_at, registration.refused = datetime.now(timezone.utc), None
        self.store.save(registration)
        return self.our_credentials(token_b)

    def accept_delete(self) -> None:
        """The CSMS DELETEd our credentials: both tokens are void; the reason stays for /health."""
        registration = self.store.require()
        registration.token_b = registration.token_b_next = registration.token_c = None
        registration.ended = (
            f"the CSMS unregistered us at {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC: "
            "a new token A and `core-client ocpi register` connect again"
        )
        self.store.save(registration)
