"""How the services answer a failure: every exception becomes an :class:`~runtime.errors.MLMatchingError`
(Litestar's own refusals translated into our vocabulary), a bug is logged once with its stack trace,
and the answer is an :class:`~runtime.errors.ErrorBody` (or the Open Inference Protocol's shape, in
:mod:`runtime.web.v2`).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.logging import LoggingConfig
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
from runtime.web.routes import bad_path_part

log = logging.getLogger("ml_matching")


def logging_config() -> LoggingConfig:
    """Litestar logs no exception itself: :func:`error_handlers` see every one, log each bug once
    with its stack trace, and answer client mistakes without logging them."""
    return LoggingConfig(configure_root_logger=False, log_exceptions="debug")


def error_handlers() -> dict[Any, Any]:
    """Every error answers with an :class:`~runtime.errors.ErrorBody` and its stable code."""
    return {
        MLMatchingError: _error_response,
        HTTPException: _error_response,
        HTTP_500_INTERNAL_SERVER_ERROR: _error_response,
    }


def service_error(request: Request[Any, Any, Any], exc: Exception) -> MLMatchingError:
    """Any exception as the :class:`MLMatchingError` the API answers with; a bug is logged here, once."""
    if isinstance(exc, MLMatchingError):
        error = exc
    elif isinstance(exc, HTTPException):  # Litestar's own: no route, wrong method, body too large, ...
        error = _translate(request, exc)
    else:
        error = _internal(exc)
    if error.status_code >= 500 and error.status_code != ModelNotReady.status_code:
        log.error("%s %s: %s", request.method, request.url.path, error, exc_info=error.__cause__ or error)
    return error


def _error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    error = service_error(request, exc)
    return Response(
        msgspec.json.encode(error.body()),
        status_code=error.status_code,
        media_type="application/json",
        headers=error.headers,
    )


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
        return InvalidInput(_parameter_problems(exc) or exc.detail)
    if "disconnected" in exc.detail:  # the client went away mid-body: its doing, one quiet line
        log.info("%s %s: the client disconnected before sending its whole body", method, path)
        return ClientGone("the client disconnected before sending its whole body")
    return _internal(exc)


def _parameter_problems(exc: HTTPException) -> str | None:
    """Litestar's refusal of a query or path parameter, naming it (its detail names only the URL)."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    problems = [
        f"{getattr(e['source'], 'value', e['source'])} parameter `{e['key']}`: {e['message']}"
        for e in extra
        if isinstance(e, dict) and {"source", "key", "message"} <= e.keys()
    ]
    return "; ".join(problems) or None


def _internal(exc: Exception) -> InternalError:
    error = InternalError("internal error (logged by the service)")
    error.__cause__ = exc
    return error
