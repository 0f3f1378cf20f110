"""An HTTP client for the web apps' tests: keeps cookies, follows redirects, sends the page's CSRF token."""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request


class WebClient:
    """A cookie-keeping HTTP client (redirects followed); calls run in a thread, the server in this loop."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf = ""

    async def get(self, path: str) -> tuple[int, str]:
        status, text = await asyncio.to_thread(self._open, path, None)
        if found := re.search(r'name="csrf" value="([^"]+)"', text):
            self.csrf = found.group(1)
        return status, text

    async def post(self, path: str, fields: dict[str, str], csrf: bool = True) -> tuple[int, str]:
        data = {**fields, **({"csrf": self.csrf} if csrf else {})}
        return await asyncio.to_thread(self._open, path, urllib.parse.urlencode(data).encode())

    def _open(self, path: str, data: bytes | None) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, data=data, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
