"""The Litestar app of both Litestar ceilings: the runtime's handler idiom, the answer left to each.

``ceiling_service.py`` answers a constant; ``scoring_ceiling_service.py`` scores the row first.
Each process builds only its own app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from ceiling_parts import DECODER, JSON, MAX_BODY_BYTES
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import RawBody


def _require_json(request: Request[Any, Any, Any]) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != JSON and not media.endswith("+json"):
        raise HTTPException(status_code=415, detail="expected a JSON body")


def make_app(name: str, answer: Callable[[Any], bytes]) -> Litestar:
    """The ceiling's app: ``answer`` makes the body of a validated request's 200 (``name`` in
    ``/health/ready``). The scoring ceiling is this app with an answer that scores."""

    @get("/health/ready", sync_to_thread=False)
    def ready() -> dict[str, Any]:
        return {"status": "ready", "modelVersion": name}

    @post("/predict", status_code=200)
    async def predict(request: Request[Any, Any, Any], body: RawBody) -> Response[bytes]:
        _require_json(request)
        try:
            row = DECODER.decode(body)
        except msgspec.ValidationError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        except msgspec.DecodeError as exc:
            raise HTTPException(status_code=400, detail=f"malformed JSON: {exc}") from None
        return Response(answer(row), media_type=JSON)

    return Litestar(route_handlers=[ready, predict], request_max_body_size=MAX_BODY_BYTES)
