"""How the services answer a failure: every exception becomes an :class:`MLMatchingError` (Litestar's
own refusals translated into our vocabulary), a bug is logged once with its stack trace, and the
answer is an :class:`~ml_matching.http.errors.ErrorBody` with the status the service's table gives
(or the Open Inference Protocol's shape, in the runtime's ``v2`` router).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from ml_matching.contract import InvalidInput, MLMatchingError, ModelNotReady
from ml_matching.http.errors import (
    STATUSES,
    BodyTooLarge,
    InternalError,
    MethodNotAllowed,
    RouteNotFound,
    Statuses,
    error_body,
    error_headers,
    status_of,
)

log = logging.getLogger("ml_matching")
#: nginx's code for a client that went away: the answer is never read, so nothing else fits.
CLIENT_GONE = 499
#: For an unrouted path: the error that says what is wrong with it, if the service knows better
#: than "no route" (the runtime names a malformed version in ``/models/...``).
PathProblem = Callable[[str], MLMatchingError | None]


class Failures:
    """One service's way of answering errors: its status table and its unrouted-path hint."""

    def __init__(self, statuses: Statuses = STATUSES, path_problem: PathProblem | None = None) -> None:
        self.statuses = statuses
        self.path_problem: PathProblem = path_problem or (lambda _: None)

    def handlers(self) -> dict[Any, Any]:
        """Litestar's ``exception_handlers``: every error answers with an ErrorBody."""
        return {
            MLMatchingError: self.response,
            HTTPException: self.response,
            HTTP_500_INTERNAL_SERVER_ERROR: self.response,
        }

    def response(self, request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if client_gone(exc):
            log.info(
                "%s %s: the client disconnected before sending its whole body",
                request.method,
                request.url.path,
            )
            return Response(b"", status_code=CLIENT_GONE)
        error, status = self.answer(request, exc)
        return Response(
            msgspec.json.encode(error_body(error, status)),
            status_code=status,
            media_type="application/json",
            headers=error_headers(error),
        )

    def answer(self, request: Request[Any, Any, Any], exc: Exception) -> tuple[MLMatchingError, int]:
        """Any exception as the error and status the API answers; a bug is logged here, once."""
        if isinstance(exc, MLMatchingError):
            error = exc
        elif isinstance(exc, HTTPException):  # Litestar's own: no route, wrong method, too large, ...
            error = self._translate(request, exc)
        else:
            error = _internal(exc)
        status = status_of(type(error), self.statuses) or InternalError.status_code
        if status >= 500 and not isinstance(error, ModelNotReady):
            log.error("%s %s: %s", request.method, request.url.path, error, exc_info=error.__cause__ or error)
        return error, status

    def _translate(self, request: Request[Any, Any, Any], exc: HTTPException) -> MLMatchingError:
        method, path = request.method, request.url.path
        if exc.status_code == 404:
            return self.path_problem(path) or RouteNotFound(f"no route for {method} {path}")
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("allow", "")
            return MethodNotAllowed(f"{method} is not allowed on {path} (allowed: {allowed})", allowed)
        if exc.status_code == 413:
            return BodyTooLarge(
                f"request body is larger than MAX_BODY_BYTES ({request.app.state.body_limit} bytes)"
            )
        if exc.status_code < 500:
            return InvalidInput(_parameter_problems(exc, request) or exc.detail)
        return _internal(exc)


def client_gone(exc: Exception) -> bool:
    """Litestar's 500 for a body the client stopped sending: its doing, worth one quiet line."""
    return isinstance(exc, HTTPException) and exc.status_code >= 500 and "disconnected" in exc.detail


def _parameter_problems(exc: HTTPException, request: Request[Any, Any, Any]) -> str | None:
    """Litestar's refusal of a query or path parameter, naming it (its detail names only the URL)
    and, for one of a few values, those values (msgspec says only "Invalid enum value 'foo'")."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    problems = [
        f"{getattr(e['source'], 'value', e['source'])} parameter `{e['key']}`: {e['message']}"
        + _choices(request, e["key"])
        for e in extra
        if isinstance(e, dict) and {"source", "key", "message"} <= e.keys()
    ]
    return "; ".join(problems) or None


def _choices(request: Request[Any, Any, Any], key: str) -> str:
    """`` (expected a, b or c)`` when the route's parameter ``key`` is a Literal, else nothing."""
    try:
        field = request.route_handler.parsed_fn_signature.parameters[key]
    except (AttributeError, KeyError):  # an alias, or no handler: Litestar's words alone
        return ""
    if not field.is_literal:
        return ""
    *first, last = (str(v) for v in field.args)
    return f" (expected {', '.join(first)} or {last})" if first else f" (expected {last})"


def _internal(exc: Exception) -> InternalError:
    error = InternalError("internal error (logged by the service)")
    error.__cause__ = exc
    return error
