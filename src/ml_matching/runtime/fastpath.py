"""The plain ``POST /predict`` scored before Litestar's router: the service's hottest route, shortest.

Litestar's routing, handler call, signature model and ``Response`` cost about 34 µs of CPU per
request, in Python, at 16 requests at a time: more than decoding, scoring (coalesced) and encoding
the row together (``python bench/request_cost.py``: the same request through the router and
through this path). A request that is plainly a score — ``POST /predict``, no query string, one JSON
``Content-Type``, a body within ``MAX_BODY_BYTES``, no CORS ``Origin`` when CORS is on — is
answered here, with the bytes and headers Litestar's handler sends. Anything else, and any request
whose scoring raises, goes to the Litestar app unchanged with its body replayed: every refusal is
Litestar's own answer (a malformed body is decoded twice, the price of answering errors in one
place), and the route stays in the OpenAPI document, where its handler still serves ``?explain=true``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from ml_matching.http import is_json
from ml_matching.runtime.experiments import unit_key

PATH = "/predict"
#: Scores one row: (body, unit key, explain) -> the encoded answer (``Serving.predict``).
Predict = Callable[[bytes, str | None, bool], Awaitable[bytes]]
_JSON_HEADER = (b"content-type", b"application/json")


def predict_fast_path(predict: Predict, body_limit: int, cors: bool) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware answering plain ``POST /predict`` requests itself, the rest through ``app``."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def entry(scope: Scope, receive: Receive, send: Send) -> None:
            if (
                scope["type"] != ScopeType.HTTP
                or scope["path"] != PATH
                or scope["method"] != "POST"
                or scope["query_string"]
            ):
                await app(scope, receive, send)
                return
            plain, key = _plain_headers(scope, body_limit, cors)
            if not plain:
                await app(scope, receive, send)
                return
            body, received = await _read_body(receive, body_limit)
            if body is None:
                await app(scope, _replay(received, receive), send)
                return
            try:
                answer = await predict(body, unit_key(key), False)
            except Exception:  # Litestar answers it, as it answers every error
                await app(scope, _replay(received, receive), send)
                return
            scope["path_template"] = PATH  # what the request metrics label it by, as Litestar sets it
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [_JSON_HEADER, (b"content-length", str(len(answer)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": answer, "more_body": False})

        return entry

    return wrap


def _plain_headers(scope: Scope, body_limit: int, cors: bool) -> tuple[bool, str | None]:
    """Whether the request is plain, and its raw ``ML-Unit-Key`` (None: none sent). Not plain, for
    Litestar to answer: not one JSON content type, a declared length over the limit, a repeated
    key, or a CORS request."""
    out = (False, None)
    content_type = key = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            if content_type is not None:
                return out
            content_type = value
        elif name == b"ml-unit-key":
            if key is not None:
                return out
            key = value.decode("latin-1")  # as Litestar's Headers decode it
        elif name == b"content-length":
            if not value.isdigit() or int(value) > body_limit:
                return out
        elif cors and name == b"origin":
            return out
    if content_type is None or not is_json(content_type.decode("latin-1")):
        return out
    return True, key


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, list[ReceiveMessage]]:
    """The whole body (None when it passes ``limit`` or the client left), and the messages read."""
    received: list[ReceiveMessage] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            return None, received
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None, received
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks), received


def _replay(received: list[ReceiveMessage], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(received)

    async def replayed() -> ReceiveMessage:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
