"""``python -m core_client.web --config core-client.toml --web-config web.toml``."""

from core_client.web.serve import app

app(prog_name="python -m core_client.web")
