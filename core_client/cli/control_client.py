"""The client side of the daemon's control endpoint, for ``core-client health`` and ``core-client
command``: GET /health, POST /command with the control token (see :mod:`core_client.web.control`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from core_client.config import Settings, control_token
from core_client.errors import CoreClientError


class ControlError(CoreClientError):
    """The control endpoint cannot be reached, or it refused the request."""


def call_control(settings: Settings, url: str | None, path: str, params: dict[str, Any] | None = None) -> Any:
    """GET ``path`` of the endpoint at ``url`` (default: the config's), or POST ``params`` to it with
    the token (``control_token``, else the file the daemon wrote next to its database)."""
    url = (url or f"http://{settings.control_host}:{settings.control_port}").rstrip("/")
    request = urllib.request.Request(url + path)
    if params is not None:
        token = control_token(settings)
        if token is None:
            raise ControlError(
                f"no control token: set control_token, or give the daemon's config (token file "
                f"{settings.control_token_file} not found)"
            )
        request.data = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}).encode()
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read() or b"{}").get("error")
        except ValueError:
            message = None
        raise ControlError(f"control endpoint {url}: {message or f'HTTP {error.code}'}") from None
    except OSError as error:  # URLError, refused, timed out
        reason = getattr(error, "reason", error)
        raise ControlError(f"no Core Client control endpoint at {url} ({reason}): is the daemon running?") from None
