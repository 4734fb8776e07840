"""The plain ``POST /predict`` is answered before Litestar's router, exactly as Litestar's handler
answers it; everything that is not plainly a score still reaches Litestar, body and all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.runtime import create_app
from ml_matching.runtime.settings import Settings

LIMIT = 4096


class Exchange:
    """One request driven straight through the ASGI app: what it sent back and the scope it left."""

    def __init__(self, scope: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        self.scope = scope
        self.status = messages[0]["status"]
        self.headers = messages[0]["headers"]
        self.body = b"".join(m.get("body", b"") for m in messages[1:])

    @property
    def routed(self) -> bool:
        """Whether Litestar's router handled it (it records the matched handler in the scope)."""
        return "route_handler" in self.scope

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


@pytest.fixture
def started(store: Path) -> Iterator[TestClient[Litestar]]:
    settings = Settings(models_dir=store, max_body_bytes=LIMIT)
    with TestClient(create_app(settings)) as client:
        yield client


def _exchange(
    client: TestClient[Litestar],
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]],
    query: bytes = b"",
    disconnect: bool = False,
) -> Exchange:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict", "raw_path": b"/predict", "root_path": "",
        "query_string": query, "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        "state": {},
    }  # fmt: skip
    incoming = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    if disconnect:
        incoming[-1]["more_body"] = True
        incoming.append({"type": "http.disconnect"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    client.blocking_portal.call(client.app, scope, receive, send)
    return Exchange(scope, sent)


JSON = [(b"content-type", b"application/json")]


def test_a_plain_score_skips_the_router_and_answers_as_the_handler_does(
    started: TestClient[Litestar], row: dict[str, float]
) -> None:
    body = msgspec.json.encode(row)
    fast = _exchange(started, [body], JSON)
    handler = _exchange(started, [body], JSON, query=b"explain=false")
    assert not fast.routed and handler.routed
    assert (
        (fast.status, fast.headers)
        == (handler.status, handler.headers)
        == (
            200,
            [(b"content-type", b"application/json"), (b"content-length", str(len(fast.body)).encode())],
        )
    )
    a, b = fast.json(), handler.json()
    assert a.pop("predictionId") != b.pop("predictionId")
    assert a == b
    assert fast.scope["path_template"] == "/predict"  # the request metrics' label


def test_a_body_in_chunks_is_joined(started: TestClient[Litestar], row: dict[str, float]) -> None:
    body = msgspec.json.encode(row)
    whole = _exchange(started, [body], JSON).json()
    parts = _exchange(started, [body[:10], body[10:50], body[50:]], JSON)
    assert not parts.routed
    assert parts.json()["score"] == whole["score"]


@pytest.mark.parametrize(
    ("chunks", "headers", "query", "status", "code"),
    [
        ([b'{"nicheAlignment": 2}'], JSON, b"", 400, "invalid_input"),
        ([b"{}"], [(b"content-type", b"text/plain")], b"", 415, "unsupported_media_type"),
        ([b"{}"], [*JSON, *JSON], b"", 400, "invalid_input"),
        (
            [b"{}"],
            [*JSON, (b"content-length", str(LIMIT + 1).encode())],
            b"",
            413,
            "request_entity_too_large",
        ),
        (
            [b" " * 1000] * 5,
            JSON,
            b"",
            413,
            "request_entity_too_large",
        ),  # no declared length: counted as read
        ([b"{}"], [*JSON, (b"ml-unit-key", b"%ff")], b"", 400, "invalid_input"),
        ([b"{}"], JSON, b"explain=maybe", 400, "invalid_input"),
    ],
    ids=[
        "bad-value",
        "not-json",
        "two-content-types",
        "declared-too-large",
        "read-too-large",
        "bad-key",
        "query",
    ],
)
def test_what_is_not_a_plain_score_is_answered_by_litestar(
    started: TestClient[Litestar],
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]],
    query: bytes,
    status: int,
    code: str,
) -> None:
    out = _exchange(started, chunks, headers, query)
    assert out.routed or status == 413  # Litestar refuses an oversized body before routing it
    assert (out.status, out.json()["error"]) == (status, code)


def test_a_client_gone_mid_body_gets_no_score(started: TestClient[Litestar], row: dict[str, float]) -> None:
    body = msgspec.json.encode(row)
    out_messages = _exchange(started, [body[:20]], JSON, disconnect=True)
    assert out_messages.routed and out_messages.status != 200
