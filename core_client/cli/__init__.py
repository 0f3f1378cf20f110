"""The `core-client` command line: run the daemon, keys, stations, records, control calls."""

from core_client.cli.main import app

__all__ = ["app"]
