"""The floor under the framework: the ceiling's work as a bare ASGI callable, no web framework.

The same checks and answer as ``ceiling_service.py`` (the Content-Type check, the body-size limit,
the strict msgspec decode of the 19 bounded floats, a constant answer encoded once at import), with
nothing between uvicorn and them. The runtime answers a plain ``POST /predict`` before Litestar's
router (``ml_matching/runtime/fastpath.py``), so it can beat the Litestar ceiling; its share of
this one's requests/s is what it keeps of what a Python service on uvicorn can do here at all.

Bench-only. Environment: ``BENCH_HOST``, ``BENCH_PORT``. Run: ``python bench/baselines/asgi_service.py``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from bench_server import serve
from ceiling_parts import DECODER, MAX_BODY_BYTES, RESPONSE

Send = Any
JSON = [(b"content-type", b"application/json")]
READY = msgspec.json.encode({"status": "ready", "modelVersion": "asgi"})


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [*JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/health/ready":
        await _answer(send, 200, READY)
        return
    if scope["path"] != "/predict" or scope["method"] != "POST":
        await _answer(send, 404, b'{"detail":"not found"}')
        return
    media = dict(scope["headers"]).get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    if media != b"application/json" and not media.endswith(b"+json"):
        await _answer(send, 415, b'{"detail":"expected a JSON body"}')
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > MAX_BODY_BYTES:
            await _answer(send, 413, b'{"detail":"too large"}')
            return
    try:
        DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        await _answer(send, 400, msgspec.json.encode({"detail": str(exc)}))
        return
    await _answer(send, 200, RESPONSE)


if __name__ == "__main__":
    serve(app)
