"""An HTTP client for the web apps' tests: keeps cookies, follows redirects, sends the page's CSRF token."""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request


class WebClient:
    """A cookie-keeping HTTP client (redirects followed); calls run in a thread, the server in this loop."""

    def __init__(self, base: str, context: ssl.SSLContext | None = None) -> None:
        """``context``: the TLS client context for an https:// ``base``."""
        self.base = base
        cookies = urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), cookies)
        self.csrf = ""
        self.set_cookie: list[str] = []  # the Set-Cookie headers of the last answer

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        status, text = await asyncio.to_thread(self._open, path, None, headers or {})
        if found := re.search(r'name="csrf" value="([^"]+)"', text):
            self.csrf = found.group(1)
        return status, text

    async def post(
        self, path: str, fields: dict[str, str], csrf: bool = True, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """POST a form (with the CSRF token of the last page, unless ``csrf`` is False); ``headers`` as a
        browser would add them (say, ``Sec-Fetch-Site``)."""
        data = {**fields, **({"csrf": self.csrf} if csrf else {})}
        return await asyncio.to_thread(self._open, path, urllib.parse.urlencode(data).encode(), headers or {})

    def _open(self, path: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path, data=data, headers=headers)
        try:
            with self.opener.open(request, timeout=30) as response:
                self.set_cookie = response.headers.get_all("set-cookie") or []
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            self.set_cookie = exc.headers.get_all("set-cookie") or []
            return exc.code, exc.read().decode()
