"""The Open Inference Protocol (KServe v2) REST paths, beside the service's own API.

``/v2`` and its health paths, the model's metadata and readiness (``MODEL_NAME``, the store's
versions), and inference on the served version. Errors answer ``{"error": "..."}`` with the same
status codes and messages as the rest of the API. The messages themselves are in
:mod:`ml_matching.runtime.oip`.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request, Response, Router, get, post
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import FromPath, RawBody
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from ml_matching.contract import (
    InvalidInput,
    MLMatchingError,
    ModelNotReady,
    VersionNotFound,
    check_version_name,
    list_versions,
)
from ml_matching.http import BodyTooLarge, Failures, error_responses
from ml_matching.http.errors import error_headers
from ml_matching.http.failures import client_gone
from ml_matching.runtime import oip
from ml_matching.runtime.errors import RUNTIME_STATUSES, ModelNotFound, VersionNotLoaded
from ml_matching.runtime.experiments import Route
from ml_matching.runtime.scoring import Scorer, new_prediction_id
from ml_matching.runtime.service import ModelService
from ml_matching.runtime.serving import Serving

TAGS = ["open inference protocol"]
# Bodies this large take milliseconds to decode and score: run them off the event loop.
OFFLOAD_BYTES = 64 * 1024


def _protocol_spec(status: int, errors: list[type[MLMatchingError]]) -> ResponseSpec:
    examples = [Example(summary=e.code, value={"error": e.example}) for e in errors]
    description = "\n\n".join(e.when for e in errors)
    return ResponseSpec(
        oip.ProtocolError, description=description, generate_examples=False, examples=examples
    )


def protocol_errors(*errors: type[MLMatchingError]) -> dict[int, ResponseSpec]:
    """OpenAPI responses in the protocol's ``{"error": ...}`` shape."""
    return error_responses(*errors, statuses=RUNTIME_STATUSES, spec=_protocol_spec)


INFER_ERRORS = protocol_errors(
    InvalidInput, BodyTooLarge, ModelNotFound, VersionNotFound, VersionNotLoaded, ModelNotReady
)


NOT_READY = {503: ResponseSpec(oip.ReadyState, description='not ready: `{"ready": false}`')}


def _readiness(ready: bool) -> Response[oip.ReadyState]:
    return Response(oip.ReadyState(ready), status_code=200 if ready else 503)


def v2_router(service: ModelService, server_version: str, failures: Failures, serving: Serving) -> Router:
    """Every v2 path, answering errors in the protocol's shape."""
    name = service.settings.model_name

    def protocol_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if client_gone(exc):  # one quiet line, as on every other route
            return failures.response(request, exc)
        error, status = failures.answer(request, exc)
        return Response(
            oip.ProtocolError(str(error)),
            status_code=status,
            media_type="application/json",
            headers=error_headers(error),
        )

    def model(given: str) -> None:
        if given != name:
            raise ModelNotFound(f"no model `{given}` here: this service serves `{name}` (MODEL_NAME)")

    def stored(version: str) -> str:
        version = check_version_name(version)
        service.versions.sidecar(version)  # raises VersionNotFound
        return version

    def served(version: str | None) -> Scorer:
        scorer = service.scorer
        if version is not None and stored(version) != scorer.version:
            raise VersionNotLoaded(
                f"version {version} is in the store but not loaded: this service serves {scorer.version} "
                f"(POST /models/{version}/load serves it)"
            )
        return scorer

    @get("/", sync_to_thread=False, summary="Server metadata")
    def server() -> oip.ServerMetadata:
        return oip.ServerMetadata(name=name, version=server_version, extensions=[])

    @get("/health/live", sync_to_thread=False, summary="Server liveness")
    def live() -> oip.Live:
        return oip.Live(live=True)

    @get(
        "/health/ready",
        sync_to_thread=False,
        summary="Server readiness (200 ready, 503 not)",
        responses=NOT_READY,
    )
    def ready() -> Response[oip.ReadyState]:
        return _readiness(service.version is not None)

    @get(
        "/models/{model_name:str}",
        sync_to_thread=True,
        summary="Metadata of the served version",
        responses=protocol_errors(ModelNotFound, ModelNotReady),
    )
    def metadata(model_name: FromPath[str]) -> oip.ModelMetadata:
        model(model_name)
        return oip.metadata(name, list_versions(service.root), service.scorer.model.sidecar)

    @get(
        "/models/{model_name:str}/ready",
        sync_to_thread=False,
        summary="Readiness of the model (200 ready, 503 not)",
        responses={**protocol_errors(ModelNotFound), **NOT_READY},
    )
    def model_ready(model_name: FromPath[str]) -> Response[oip.ReadyState]:
        model(model_name)
        return _readiness(service.version is not None)

    @get(
        "/models/{model_name:str}/versions/{version:str}",
        sync_to_thread=True,
        summary="Metadata of a stored version",
        responses=protocol_errors(InvalidInput, ModelNotFound, VersionNotFound),
    )
    def version_metadata(model_name: FromPath[str], version: FromPath[str]) -> oip.ModelMetadata:
        model(model_name)
        return oip.metadata(name, [stored(version)], service.versions.sidecar(version))

    @get(
        "/models/{model_name:str}/versions/{version:str}/ready",
        sync_to_thread=True,
        summary="Readiness of a stored version: 200 while it serves, 503 otherwise",
        responses={
            **protocol_errors(InvalidInput, ModelNotFound, VersionNotFound),
            **NOT_READY,
        },
    )
    def version_ready(model_name: FromPath[str], version: FromPath[str]) -> Response[oip.ReadyState]:
        model(model_name)
        return _readiness(stored(version) == service.version)

    def score(body: bytes, header_length: str | None, version: str | None) -> bytes:
        """Decode, route, check, score and encode one infer request (blocking: small bodies on the loop)."""
        request = oip.decode(body, header_length)
        # The body's model_name is not checked: KServe's client sends what the caller set there,
        # and the path names the model (KServe's own server ignores it too).
        if request.model_version:  # as the path's: a version asked for by name
            if version is not None and request.model_version != version:
                raise InvalidInput(
                    f"the body's model_version {request.model_version} is not the path's {version}"
                )
            version = request.model_version
        if version is not None:  # a version asked for by name is that version, outside any experiment
            route, arms = Route(served(version)), None
        else:
            route, arms = serving.route(oip.unit(request))
        x = oip.matrix(request, route.scorer.model, route.scorer.max_batch_rows)  # one read of the route
        try:
            response, p = oip.answer(request, route.scorer.model, x, name)
        except InvalidInput:
            raise
        except Exception as exc:  # an arm's or the holdout's version that raises: control answers
            route = serving.fall_back(route, arms, exc)
            response, p = oip.answer(request, route.scorer.model, x, name)
        scorer = route.scorer
        if scorer.observe is not None:
            scorer.observe(x, True)
        if route.experiment is not None or route.holdout is not None or serving.recorder.mode == "all":
            ids = [new_prediction_id() for _ in range(len(x))]
            serving.record_infer(route, arms, x, p, ids)
            response = oip.with_predictions(response, ids, route.experiment, route.arm)
        return oip.encode(response)

    async def infer(request: Request[Any, Any, Any], body: bytes, version: str | None) -> Response[Any]:
        length = request.headers.get("inference-header-content-length")
        if len(body) > OFFLOAD_BYTES:
            result = await anyio.to_thread.run_sync(score, body, length, version)
        else:
            result = score(body, length, version)
        return Response(result, media_type="application/json")

    @post("/models/{model_name:str}/infer", status_code=200, summary="Inference", responses=INFER_ERRORS)
    async def infer_served(
        request: Request[Any, Any, Any], model_name: FromPath[str], body: RawBody
    ) -> Response[oip.InferResponse]:
        model(model_name)
        return await infer(request, bytes(body), None)

    @post(
        "/models/{model_name:str}/versions/{version:str}/infer",
        status_code=200,
        summary="Inference on a version (the served one)",
        responses=INFER_ERRORS,
    )
    async def infer_version(
        request: Request[Any, Any, Any], model_name: FromPath[str], version: FromPath[str], body: RawBody
    ) -> Response[oip.InferResponse]:
        model(model_name)
        return await infer(request, bytes(body), version)

    handlers: list[Any] = [server, live, ready, metadata, model_ready, version_metadata, version_ready]
    handlers += [infer_served, infer_version]
    return Router(
        "/v2",
        route_handlers=handlers,
        tags=TAGS,
        exception_handlers={
            MLMatchingError: protocol_error,
            HTTPException: protocol_error,
            HTTP_500_INTERNAL_SERVER_ERROR: protocol_error,
        },
    )
