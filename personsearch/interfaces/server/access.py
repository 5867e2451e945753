"""Who may call the server and what every answer carries: the access token and the security headers.

Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``: that one wraps every request and
response in extra tasks and streams, which under load costs the event loop more than the
search it fronts.
"""

from __future__ import annotations

import secrets

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personsearch.interfaces.server.limits import send_detail

TOKEN_COOKIE = "personsearch_token"

PUBLIC_PATHS = frozenset({"/", "/api/login", "/favicon.ico"})
"""Reachable without the token: the page itself (it holds no data) and the login it calls."""

NEEDS_TOKEN = "this server needs its access token: send 'Authorization: Bearer TOKEN', or log in on the page"


def _headers(styles: str) -> tuple[tuple[bytes, bytes], ...]:
    policy = (
        f"default-src 'self'; img-src 'self' blob: data:; style-src {styles}; script-src 'self'; "
        "frame-ancestors 'none'"
    )
    return (
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", policy.encode()),
    )


HEADERS, DOCS_HEADERS = _headers("'self'"), _headers("'self' 'unsafe-inline'")  # Swagger UI styles inline


def security_headers(path: str) -> tuple[tuple[bytes, bytes], ...]:
    """What every answer carries: no sniffing, no referrer, no framing, only this server's scripts
    (made once, not per request)."""
    return DOCS_HEADERS if path == "/docs" else HEADERS


def _offered_token(headers: dict[bytes, bytes]) -> str:
    given = headers.get(b"authorization", b"").decode("latin-1")
    if given.lower().startswith("bearer "):
        return given[7:]
    return cookie_parser(headers.get(b"cookie", b"").decode("latin-1")).get(TOKEN_COOKIE, "")


class AccessGuard:
    """ASGI middleware: 401 without ``token`` (when one is set) outside ``PUBLIC_PATHS`` and the
    static files; the security headers on every answer, the 401 included."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = security_headers(path)
        if self.token is not None and path not in PUBLIC_PATHS and not path.startswith("/static/"):
            offered = _offered_token(dict(scope.get("headers") or []))
            if not secrets.compare_digest(offered.encode(), self.token.encode()):
                await send_detail(send, 401, NEEDS_TOKEN, [(b"www-authenticate", b"Bearer"), *extra])
                return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
