"""HTTP handlers. They close over one :class:`ModelService`, so the request path has no lookups."""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.params import FromPath, RawBody

from runtime.coalesce import RowCoalescer
from runtime.docs import ErrorBody, request_body_operation
from runtime.errors import InvalidInput, MLMatchingError, UnsupportedMediaType
from runtime.features import FeatureSet
from runtime.scoring import BatchResponse, PredictResponse, batch_type, row_type
from runtime.service import ModelService
from runtime.store import check_version_name

JSON = "application/json"
SERVICE = "ml-matching"
# Bodies this large take milliseconds to decode and score: run them off the event loop.
OFFLOAD_BYTES = 64 * 1024


class Unauthorized(MLMatchingError):
    """Missing or wrong bearer token on an admin endpoint."""

    status_code = 401


class ManagementDisabled(MLMatchingError):
    """No admin token is configured, so model management is off."""

    status_code = 403


def _errors(*codes: int) -> dict[int, ResponseSpec]:
    return {c: ResponseSpec(ErrorBody, description="error, naming the field and the reason") for c in codes}


def _json(data: bytes) -> Response[Any]:
    """Already-encoded JSON, sent as is."""
    return Response(data, media_type=JSON)


def _require_json(request: Request[Any, Any, Any]) -> None:
    raw = request.headers.get("content-type", "")
    media = raw.split(";", 1)[0].strip().lower()
    if media != JSON and not media.endswith("+json"):
        got = f"`{media}`" if media else "no content type"
        raise UnsupportedMediaType(f"expected a JSON body (Content-Type: application/json), got {got}")


def build_routes(service: ModelService, docs_features: FeatureSet) -> list[HTTPRouteHandler]:
    """The service's route handlers; request bodies are documented with ``docs_features``."""
    settings = service.settings
    row = row_type(docs_features)
    coalescer = RowCoalescer()

    batch = batch_type(row, settings.max_batch_rows)

    @get("/health", sync_to_thread=False, tags=["health"], summary="Liveness")
    def health() -> dict[str, Any]:
        version = service.version
        return {
            "status": "healthy",
            "service": SERVICE,
            "modelLoaded": version is not None,
            "modelVersion": version,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }

    @get("/health/ready", sync_to_thread=False, tags=["health"], summary="Readiness", responses=_errors(503))
    def ready() -> dict[str, Any]:
        return {"status": "ready", "modelVersion": service.scorer.version}

    @post(
        "/predict",
        status_code=200,
        tags=["predict"],
        summary="Score one match",
        operation_class=request_body_operation(row, "one object with the model's features"),
        responses=_errors(400, 413, 415, 503),
    )
    async def predict(request: Request[Any, Any, Any], body: RawBody) -> Response[PredictResponse]:
        _require_json(request)
        scorer = service.scorer  # one read: a swap during this request does not change its model
        return _json(await coalescer.submit(scorer, scorer.decode_row(body)))

    @post(
        "/predict/batch",
        status_code=200,
        tags=["predict"],
        summary="Score many matches",
        operation_class=request_body_operation(batch, '{"instances": [...]} of feature objects'),
        responses=_errors(400, 413, 415, 503),
    )
    async def predict_batch(request: Request[Any, Any, Any], body: RawBody) -> Response[BatchResponse]:
        _require_json(request)
        scorer = service.scorer  # one read: a swap during this request does not change its model
        if len(body) > OFFLOAD_BYTES:
            return _json(await anyio.to_thread.run_sync(scorer.predict_batch, bytes(body)))
        return _json(scorer.predict_batch(body))

    @get("/models", sync_to_thread=False, tags=["models"], summary="List versions")
    def models() -> Response[list[dict[str, Any]]]:
        return _json(msgspec.json.encode(service.listing()))

    @get(
        "/models/{version:str}",
        sync_to_thread=False,
        tags=["models"],
        summary="A version's sidecar",
        responses=_errors(400, 404),
    )
    def model_sidecar(version: FromPath[str]) -> Response[dict[str, Any]]:
        return _json(service.sidecar_bytes(check_version_name(version)))

    @post(
        "/models/{version:str}/load",
        status_code=200,
        tags=["models"],
        summary="Verify and serve a version",
        responses=_errors(400, 401, 403, 404, 422),
        security=[{"bearer": []}],
    )
    async def load(request: Request[Any, Any, Any], version: FromPath[str]) -> dict[str, Any]:
        _authorize(request, settings.admin_token)
        result = await anyio.to_thread.run_sync(service.load, check_version_name(version))
        return {
            "status": "success",
            "version": result.version,
            "previousVersion": result.previous_version,
            "persisted": result.persisted,
        }

    return [health, ready, predict, predict_batch, models, model_sidecar, load, *_doc_pages()]


def _authorize(request: Request[Any, Any, Any], token: str | None) -> None:
    if not token:
        raise ManagementDisabled("model management is disabled: set ML_SERVICE_ADMIN_TOKEN to enable it")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest takes the same time whatever prefix matches, so the token cannot be guessed by timing.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("missing or wrong bearer token (Authorization: Bearer <ML_SERVICE_ADMIN_TOKEN>)")


def bad_version_in_path(path: str) -> InvalidInput | None:
    """For an unrouted ``/models/...`` path: the error naming its version, if that is malformed.

    A version holding ``/`` (e.g. ``..%2F..%2Fetc``) matches no route; it is a bad request, not a
    missing page.
    """
    if not path.startswith("/models/"):
        return None
    parts = path[len("/models/") :].strip("/").split("/")
    candidate = "/".join(parts[:-1] if len(parts) > 1 and parts[-1] == "load" else parts)
    try:
        check_version_name(candidate)
    except InvalidInput as exc:
        return exc
    return None


def _doc_pages() -> list[HTTPRouteHandler]:
    swagger, redoc = SwaggerRenderPlugin(), RedocRenderPlugin()

    @get("/docs", include_in_schema=False, media_type="text/html", sync_to_thread=False)
    def docs(request: Request[Any, Any, Any]) -> bytes:
        return swagger.render(request, request.app.openapi_schema.to_schema())

    @get("/redoc", include_in_schema=False, media_type="text/html", sync_to_thread=False)
    def redoc_page(request: Request[Any, Any, Any]) -> bytes:
        return redoc.render(request, request.app.openapi_schema.to_schema())

    return [docs, redoc_page]
