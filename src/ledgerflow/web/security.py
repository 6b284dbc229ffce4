"""What guards the dashboard: the access token, the hosts it may bind, security headers.

The token is checked on every request (``Authorization: Bearer``, the ``X-Ledgerflow-Token``
header, or the cookie set after one visit with ``?token=``), compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ledgerflow.errors import UsageError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "ledgerflow_token"
HEADER = "x-ledgerflow-token"

#: No inline or foreign scripts (nor eval), nothing from other origins, no framing. Inline
#: styles are allowed: the graph library sets them on the elements it draws.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve another host than loopback without an access token."""
    if not is_loopback(host) and not token:
        raise UsageError(
            f"refusing to serve the dashboard on {host} without an access token",
            hint="pass --token, set LEDGERFLOW_DASHBOARD_TOKEN or dashboard.token in ledgerflow.yml, or bind 127.0.0.1",
        )


def token_matches(given: str | None, token: str) -> bool:
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8"))


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class SecurityHeaders:
    """Adds :data:`HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, add_headers)


class TokenGate:
    """Lets a request through only when it carries the access token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        bearer = headers.get("authorization", "")
        given = [
            bearer[7:].strip() if bearer.lower().startswith("bearer ") else None,
            headers.get(HEADER),
            _cookie(headers.get("cookie", ""), COOKIE),
        ]
        if any(token_matches(g, self.token) for g in given):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = [v for k, v in query if k == "token"]
        if offered and token_matches(offered[-1], self.token):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            # One leading slash: "//host/..." would send the browser to another site.
            location = "/" + scope.get("path", "/").lstrip("/\\") + (f"?{rest}" if rest else "")
            await _respond(send, 303, b"", [
                (b"location", location.encode("latin-1", "replace")),
                (b"set-cookie", f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode()),
            ])
            return
        wants_json = scope.get("path", "").startswith("/api/")
        body = (b'{"error": "an access token is required"}' if wants_json else
                b"<!doctype html><title>Token required</title><h1>Access token required</h1>"
                b"<p>Open the address printed by <code>ledgerflow dashboard</code> (it ends in "
                b"<code>?token=...</code>) or send the token in an <code>Authorization: Bearer</code> header.</p>")
        kind = b"application/json" if wants_json else b"text/html; charset=utf-8"
        await _respond(send, 401, body, [(b"content-type", kind)])


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
