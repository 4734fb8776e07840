"""Request limits Litestar does not state itself: the size of the request headers (HTTP 431); and
:func:`before_routing`, for middleware that must see every request.

uvicorn with httptools reads headers of any size; a service that states its limits answers past
MAX_HEADER_BYTES (16 KiB by default, Node's own limit) with 431 naming the limit, before any work.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send
from prometheus_client import CollectorRegistry

from ml_matching.http.errors import HeadersTooLarge, error_body
from ml_matching.http.metrics import NAMESPACE, HttpMetrics

Middleware = Callable[[ASGIApp], ASGIApp]


def before_routing(app: Litestar, *middleware: Middleware) -> Litestar:
    """Wrap ``app``'s entry with ``middleware`` (the first outermost), so requests no route matches
    pass through it too: Litestar's own ``middleware=`` only wraps routed handlers."""
    for wrap in reversed(middleware):
        app.asgi_handler = wrap(app.asgi_handler)
    return app


def header_limit(limit: int) -> Middleware:
    """ASGI middleware answering 431 when a request's headers exceed ``limit`` bytes."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.HTTP:
                size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
                if size > limit:
                    await _refuse(send, size, limit)
                    return
            await app(scope, receive, send)

        return guarded

    return wrap


async def _refuse(send: Send, size: int, limit: int) -> None:
    error = HeadersTooLarge(f"request headers are {size} bytes, more than MAX_HEADER_BYTES ({limit})")
    body = msgspec.json.encode(error_body(error, error.status_code))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": error.status_code,
        "headers": headers,
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)


def entry_middleware(
    max_header_bytes: int, registry: CollectorRegistry, metrics: bool, namespace: str = NAMESPACE
) -> list[Middleware]:
    """What sees every request before routing: the request metrics (when on), the header limit."""
    limit = header_limit(max_header_bytes)
    return [HttpMetrics(registry, namespace).middleware, limit] if metrics else [limit]
