"""The roaming eMSPs' Tokens as we, their CPO, know them (mod_tokens: "CPOs can build a cache of known
Tokens"): pushed to our Tokens RECEIVER (PUT / PATCH) or pulled from their Tokens SENDER, and updated by
the Token each real-time authorization answers. Kept in the Core Client's database (SQLite or PostgreSQL,
:mod:`core_client.storage.database`), table ``ocpi_cpo_tokens`` (its own migration part), keyed as 2.2.1
keys a Token: country_code, party_id, uid and type (CiStrings: compared upper-cased); each row names the
eMSP (our peer) it came from."""

from __future__ import annotations

from collections.abc import Iterable

from core_client.ocpi.models import Token
from core_client.ocpi.models.base import ci, format_datetime
from core_client.ocpi.models.enums import TokenType
from core_client.ocpi.transport import dumps, loads
from core_client.storage.database import Database
from core_client.storage.migrations import Migration, migrate

PART = "ocpi_cpo_tokens"
STEPS = (
    Migration(
        1,
        (
            """CREATE TABLE IF NOT EXISTS ocpi_cpo_tokens (
  country_code TEXT NOT NULL, party_id TEXT NOT NULL, uid TEXT NOT NULL, type TEXT NOT NULL, emsp TEXT NOT NULL,
  last_updated TEXT NOT NULL, token TEXT NOT NULL, PRIMARY KEY (country_code, party_id, uid, type)
)""",
            "CREATE INDEX IF NOT EXISTS ocpi_cpo_tokens_uid ON ocpi_cpo_tokens(uid, type)",
        ),
    ),
)


class TokenStore:
    """The eMSPs' Tokens in ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, PART, STEPS)

    def put(self, emsp: str, token: Token) -> bool:
        """Keep ``token`` of the eMSP ``emsp`` (replacing the one of the same key); whether it is new."""
        key = _key(token.country_code, token.party_id, token.uid, token.type)
        with self.db.transaction():
            new = self.get(*key) is None
            self.db.execute(
                "INSERT INTO ocpi_cpo_tokens (country_code, party_id, uid, type, emsp, last_updated, token)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (country_code, party_id, uid, type) DO UPDATE SET"
                " emsp = excluded.emsp, last_updated = excluded.last_updated, token = excluded.token",
                (*key, emsp, format_datetime(token.last_updated), dumps(token.to_json()).decode()),
            )
        return new

    def get(self, country_code: str, party_id: str, uid: str, type: TokenType | str) -> Token | None:
        row = self.db.execute(
            "SELECT token FROM ocpi_cpo_tokens WHERE country_code = ? AND party_id = ? AND uid = ? AND type = ?",
            _key(country_code, party_id, uid, type),
        ).fetchone()
        return None if row is None else Token.model_validate(loads(row[0]))

    def tapped(self, uid: str, type: TokenType = TokenType.RFID) -> list[tuple[str, Token]]:
        """The Tokens (each with its eMSP) whose uid a charge point read (any eMSP's: a uid is unique only
        within one eMSP's platform)."""
        rows = self.db.execute(
            "SELECT emsp, token FROM ocpi_cpo_tokens WHERE uid = ? AND type = ? ORDER BY country_code, party_id",
            (ci(uid.strip()), type.value),
        )
        return [(row[0], Token.model_validate(loads(row[1]))) for row in rows]

    def keep_only(self, emsp: str, tokens: Iterable[Token]) -> int:
        """After a full pull of the eMSP's list: forget its Tokens not in it (2.2.1: "any older information
        that is not specified in the response is considered as no longer valid"); how many were forgotten."""
        kept = {_key(t.country_code, t.party_id, t.uid, t.type) for t in tokens}
        rows = self.db.execute("SELECT country_code, party_id, uid, type FROM ocpi_cpo_tokens WHERE emsp = ?", (emsp,))
        gone = [tuple(row) for row in rows if tuple(row) not in kept]
        with self.db.transaction():
            for key in gone:
                self.db.execute(
                    "DELETE FROM ocpi_cpo_tokens WHERE country_code = ? AND party_id = ? AND uid = ? AND type = ?",
                    key,
                )
        return len(gone)

    def count(self, emsp: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM ocpi_cpo_tokens WHERE emsp = ?", (emsp,)).fetchone()[0])


def _key(country_code: str, party_id: str, uid: str, type: TokenType | str) -> tuple[str, str, str, str]:
    kind = type.value if isinstance(type, TokenType) else type
    return ci(country_code), ci(party_id), ci(uid), kind
