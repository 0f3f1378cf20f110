"""The persistent state: sessions, the job queue, the chain cursor, stations (SQLite)."""
