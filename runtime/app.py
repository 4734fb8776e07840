"""The Litestar application: ``create_app(settings)``, and ``app`` for ``uvicorn runtime.app:app``."""

from __future__ import annotations

import logging
import os
import sys
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any

import msgspec
from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.exceptions import HTTPException
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from runtime.docs import ErrorBody, error_code
from runtime.errors import ArtifactCorrupt, MLMatchingError
from runtime.features import default_feature_set
from runtime.routes import bad_version_in_path, build_routes
from runtime.service import ModelService
from runtime.settings import Settings

log = logging.getLogger("ml_matching")


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the service. ``settings`` default to the process environment.

    The model is loaded in the start-up hook, so a ``TestClient`` used as a context manager (or a
    server) serves it; scoring answers 503 until a model is loaded.
    """
    settings = settings or Settings.from_environ(os.environ)
    _configure_logging(settings)
    service = ModelService(settings)
    app = Litestar(
        route_handlers=build_routes(service, default_feature_set()),
        on_startup=[lambda _: service.start()],
        exception_handlers={
            MLMatchingError: _error_response,
            HTTPException: _http_error_response,
            HTTP_500_INTERNAL_SERVER_ERROR: _internal_error_response,
        },
        request_max_body_size=settings.max_body_bytes,
        cors_config=_cors(settings),
        openapi_config=_openapi(),
        logging_config=LoggingConfig(
            configure_root_logger=False,
            log_exceptions="always",
            # Client mistakes are answered, not logged with a stack trace.
            disable_stack_trace={400, 401, 403, 404, 405, 413, 415, 422, 503},
        ),
    )
    app.state.service = service
    return app


def _configure_logging(settings: Settings) -> None:
    log.setLevel(settings.log_level_number)
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


def _openapi() -> OpenAPIConfig:
    try:
        version = dist_version("ml-matching")
    except PackageNotFoundError:  # running from a checkout that was never installed
        version = "0.0.0"
    return OpenAPIConfig(
        title="ml-matching",
        version=version,
        description="Match-success scores for influencer–brand pairs, served from ONNX with onnxruntime.",
        path="/schema",
        render_plugins=[JsonRenderPlugin()],
        components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
    )


def _json_error(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response[Any]:
    body = msgspec.json.encode(ErrorBody(status_code=status, error=code, detail=detail))
    if extra:
        body = body[:-1] + b"," + msgspec.json.encode(extra)[1:]
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error_response(_: Request[Any, Any, Any], exc: MLMatchingError) -> Response[Any]:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    extra = {"check": exc.check} if isinstance(exc, ArtifactCorrupt) else {}
    return _json_error(exc.status_code, error_code(exc), str(exc), headers, **extra)


def _http_error_response(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == 404 and (bad := bad_version_in_path(request.url.path)):
        return _error_response(request, bad)
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    detail = exc.detail
    if exc.status_code == 413:
        detail = "request body is larger than MAX_BODY_BYTES"
    return _json_error(exc.status_code, code, detail, exc.headers)


def _internal_error_response(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _json_error(500, "internal_server_error", "internal error (logged by the service)")


def __getattr__(name: str) -> Any:
    # `uvicorn runtime.app:app` builds the app from the environment on first access, so that
    # importing this module (e.g. for create_app in tests) reads no environment.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
