"""`python -m core_client.cli`: the `core-client` command."""

from core_client.cli.main import app

app()
