"""The persistent state (sessions, the chain job queue, the event cursor, stations) and the storage interface under it: SQLite or PostgreSQL, schema migrations, the signer lease."""
