"""The transaction record's tables (migrations part ``records``): the open transactions, the
append-only log (triggers refuse UPDATE, DELETE and, on PostgreSQL, TRUNCATE) and its anchors."""

from __future__ import annotations

from core_client.storage.migrations import Migration

APPEND_ONLY = "the transaction log is append-only"
STEPS = (
    Migration(
        1,
        (
            "CREATE TABLE IF NOT EXISTS record_open (transaction_id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
            """CREATE TABLE IF NOT EXISTS record_log (
    idx INTEGER PRIMARY KEY, transaction_id INTEGER NOT NULL, charge_point_id TEXT NOT NULL,
    body TEXT NOT NULL, leaf TEXT NOT NULL, appended_at REAL NOT NULL
)""",
            "CREATE INDEX IF NOT EXISTS record_log_tx ON record_log (transaction_id)",
            """CREATE TABLE IF NOT EXISTS record_anchors (
    anchor_id INTEGER PRIMARY KEY, operator TEXT NOT NULL, root TEXT NOT NULL, first_index INTEGER NOT NULL,
    count INTEGER NOT NULL, timestamp INTEGER NOT NULL, block INTEGER NOT NULL
)""",
        ),
        sqlite=tuple(
            f"CREATE TRIGGER IF NOT EXISTS record_log_no_{verb.lower()} BEFORE {verb} ON record_log"
            f" BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            for verb in ("UPDATE", "DELETE")
        ),
        postgresql=(
            "CREATE FUNCTION record_log_append_only() RETURNS trigger LANGUAGE plpgsql"
            f" AS $$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$",
            "CREATE TRIGGER record_log_no_change BEFORE UPDATE OR DELETE ON record_log"
            " FOR EACH ROW EXECUTE FUNCTION record_log_append_only()",
            "CREATE TRIGGER record_log_no_truncate BEFORE TRUNCATE ON record_log"
            " FOR EACH STATEMENT EXECUTE FUNCTION record_log_append_only()",
        ),
    ),
)
ANCHOR_FIELDS = ("anchor_id", "operator", "root", "first_index", "count", "timestamp", "block")  # the table's order
