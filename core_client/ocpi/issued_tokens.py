"""The Tokens we issue for wallet sessions at OCPI stations: one per session (APP_USER, uid = the session's
idTag ``EVN<n>``), kept in the mirror with the EVSE it was issued for, so that the CSMS may GET them or ask
to authorize one in real time; no longer live once the session's CDR has come."""

from __future__ import annotations

from datetime import datetime, timezone

from core_client.ocpi.inbox import IssuedToken
from core_client.ocpi.mirror import ImportedStation, Mirror
from core_client.ocpi.models import Token
from core_client.ocpi.models.enums import ModuleID, TokenType, WhitelistType
from core_client.ocpi.settings import OcpiSettings


class IssuedTokens:
    """Our Tokens, as the mirror keeps them (under our own party)."""

    def __init__(self, mirror: Mirror, settings: OcpiSettings) -> None:
        self.mirror, self.settings = mirror, settings

    def issue(self, id_tag: str, station: ImportedStation) -> Token:
        """The Token of one session at ``station`` (kept: the CSMS may GET it, or ask to authorize it)."""
        party = self.settings.party
        token = Token(
            country_code=party.country_code,
            party_id=party.party_id,
            uid=id_tag,
            type=TokenType.APP_USER,
            contract_id=f"{party.country_code}-{party.party_id}-{id_tag}",
            issuer=self.settings.business_name,
            valid=True,
            whitelist=WhitelistType.NEVER,
            last_updated=datetime.now(timezone.utc),
        )
        issued = {
            "token": token.to_json(),
            "location_id": station.location_id,
            "evse_uid": station.evse_uid,
            "live": True,
        }
        self.mirror.put(ModuleID.TOKENS, party, id_tag, issued, issued["token"]["last_updated"])
        return token

    def end(self, uid: str) -> None:
        """The session of Token ``uid`` has ended (its CDR came): the Token is no longer live."""
        stored = self.mirror.get(ModuleID.TOKENS, self.settings.party, uid)
        if stored is not None and stored["live"]:
            stored["live"] = False
            self.mirror.put(ModuleID.TOKENS, self.settings.party, uid, stored, stored["token"]["last_updated"])

    def all(self) -> list[Token]:
        """Every Token we issued."""
        return [Token.model_validate(i["token"]) for i in self.mirror.all(ModuleID.TOKENS)]

    def get(self, uid: str, token_type: TokenType) -> IssuedToken | None:
        """Our Token ``uid`` with where it was issued for (None: not one of ours)."""
        stored = self.mirror.get(ModuleID.TOKENS, self.settings.party, uid)
        if stored is None or token_type != TokenType.APP_USER:
            return None
        return IssuedToken(
            Token.model_validate(stored["token"]), stored["location_id"], stored["evse_uid"], stored["live"]
        )
