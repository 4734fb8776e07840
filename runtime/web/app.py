"""The Litestar application: ``create_app(settings)``.

Serve it with ``python -m runtime``, or ``uvicorn --factory runtime.web.app:create_app`` (settings
from the environment).
"""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.exceptions import HTTPException
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from runtime.errors import (
    BodyTooLarge,
    ClientGone,
    InternalError,
    InvalidInput,
    MethodNotAllowed,
    MLMatchingError,
    ModelNotReady,
    RouteNotFound,
)
from runtime.settings import Settings
from runtime.web.limits import header_limit
from runtime.web.openapi import ApiDocs, FollowingJson, doc_pages
from runtime.web.routes import bad_path_part, build_routes, request_bodies
from runtime.web.service import ModelService
from runtime.web.watch import ActiveWatch

log = logging.getLogger("ml_matching")


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the service. ``settings`` default to the process environment.

    The model is loaded in the start-up hook, so a ``TestClient`` used as a context manager (or a
    server) serves it; scoring answers 503 until a model is loaded.
    """
    settings = settings or Settings.from_environ(os.environ)
    configure_logging(settings.log_level_number)
    service = ModelService(settings)
    watch = ActiveWatch(service, settings.model_watch_seconds) if settings.watches_active else None
    docs = ApiDocs(request_bodies(settings.max_batch_rows), service.features)

    async def start(_: Litestar) -> None:
        await anyio.to_thread.run_sync(service.start)
        if watch is not None:
            watch.start()

    async def stop(_: Litestar) -> None:
        if watch is not None:
            await watch.stop()

    app = Litestar(
        route_handlers=[*build_routes(service, watch), *doc_pages(docs, settings.docs_cdn)],
        on_startup=[start],
        on_shutdown=[stop],
        exception_handlers=error_handlers(),
        request_max_body_size=settings.body_limit,
        middleware=[header_limit(settings.max_header_bytes)],
        cors_config=_cors(settings),
        openapi_config=openapi_config(
            "Match-success scores for influencer–brand pairs, served from ONNX with onnxruntime.", docs
        ),
        logging_config=logging_config(),
    )
    app.state.service = service
    app.state.body_limit = settings.body_limit
    return app


def configure_logging(level: int) -> None:
    """One stderr handler on the ``ml_matching`` logger (idempotent)."""
    log.setLevel(level)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.propagate = False


def _cors(settings: Settings) -> CORSConfig | None:
    if not settings.allowed_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.allowed_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["content-type", "authorization"],
    )


def openapi_config(description: str, docs: ApiDocs, title: str = "ml-matching") -> OpenAPIConfig:
    """``/schema/openapi.json``, following the served model's request bodies."""
    try:
        version = dist_version("ml-matching")
    except PackageNotFoundError:  # running from a checkout that was never installed
        version = "0.0.0"
    return OpenAPIConfig(
        title=title,
        version=version,
        description=description,
        path="/schema",
        render_plugins=[FollowingJson(docs)],
        components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
    )


def logging_config() -> LoggingConfig:
    """Litestar logs no exception itself: :func:`error_handlers` see every one, log each bug once
    with its stack trace, and answer client mistakes without logging them."""
    return LoggingConfig(configure_root_logger=False, log_exceptions="debug")


def error_handlers() -> dict[Any, Any]:
    """Every error answers with an :class:`~runtime.errors.ErrorBody` and its stable code."""
    return {
        MLMatchingError: _error_response,
        HTTPException: _http_error_response,
        HTTP_500_INTERNAL_SERVER_ERROR: _internal_error_response,
    }


def _error_response(request: Request[Any, Any, Any], exc: MLMatchingError) -> Response[Any]:
    if exc.status_code >= 500 and exc.status_code != ModelNotReady.status_code:
        log.error("%s %s: %s", request.method, request.url.path, exc, exc_info=exc.__cause__ or exc)
    return Response(
        msgspec.json.encode(exc.body()),
        status_code=exc.status_code,
        media_type="application/json",
        headers=exc.headers,
    )


def _http_error_response(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Litestar's own refusals (no route, wrong method, body too large) in our vocabulary."""
    return _error_response(request, _translate(request, exc))


def _translate(request: Request[Any, Any, Any], exc: HTTPException) -> MLMatchingError:
    method, path = request.method, request.url.path
    if exc.status_code == 404:
        return bad_path_part(path) or RouteNotFound(f"no route for {method} {path}")
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("allow", "")
        return MethodNotAllowed(f"{method} is not allowed on {path} (allowed: {allowed})", allowed)
    if exc.status_code == 413:
        return BodyTooLarge(
            f"request body is larger than MAX_BODY_BYTES ({request.app.state.body_limit} bytes)"
        )
    if exc.status_code < 500:
        return InvalidInput(exc.detail)
    if "disconnected" in exc.detail:  # the client went away mid-body: its doing, one quiet line
        log.info("%s %s: the client disconnected before sending its whole body", method, path)
        return ClientGone("the client disconnected before sending its whole body")
    return _internal(exc)


def _internal_error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, HTTPException):  # Litestar's own 500s, e.g. a client gone mid-body
        return _http_error_response(request, exc)
    return _error_response(request, _internal(exc))


def _internal(exc: Exception) -> InternalError:
    error = InternalError("internal error (logged by the service)")
    error.__cause__ = exc
    return error
