"""The framework ceiling for the benchmarks: Litestar that validates the request and answers a constant.

It does everything the runtime's ``POST /predict`` does except scoring: the same Litestar handler
idiom as ``ml_matching/runtime/routes.py`` (an ``async`` handler taking ``RawBody``, the Content-Type check, a
reused strict msgspec decoder into a Struct of the 19 bounded floats that forbids unknown fields,
bytes returned in a ``Response``), the same body-size limit, and a response of the same shape that
was encoded once at import. The runtime's requests/s divided by this one's is the share of the
framework's best that the runtime keeps.

Bench-only; never imported by the runtime. Environment: ``BENCH_HOST``, ``BENCH_PORT``.
Run: ``python bench/baselines/ceiling_service.py``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from bench_server import serve
from ceiling_parts import DECODER, JSON, MAX_BODY_BYTES, RESPONSE
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import RawBody


def _require_json(request: Request[Any, Any, Any]) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != JSON and not media.endswith("+json"):
        raise HTTPException(status_code=415, detail="expected a JSON body")


@get("/health/ready", sync_to_thread=False)
def ready() -> dict[str, Any]:
    return {"status": "ready", "modelVersion": "ceiling"}


@post("/predict", status_code=200)
async def predict(request: Request[Any, Any, Any], body: RawBody) -> Response[bytes]:
    _require_json(request)
    try:
        DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    except msgspec.DecodeError as exc:
        raise HTTPException(status_code=400, detail=f"malformed JSON: {exc}") from None
    return Response(RESPONSE, media_type=JSON)


app = Litestar(route_handlers=[ready, predict], request_max_body_size=MAX_BODY_BYTES)


if __name__ == "__main__":
    serve(app)
