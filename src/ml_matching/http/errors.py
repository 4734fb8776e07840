"""How both services answer errors: the status of each domain error, and the errors only HTTP has.

The domain's errors (:mod:`ml_matching.contract.errors` and the rooms' own) say what happened and
carry a stable ``code``; the status they are answered with is decided here, in one table per
service (:data:`STATUSES`, extended by each app). The errors below exist only because a request
was answered, so they carry their status themselves::

    MLMatchingError
    └── HttpError                       an error only an HTTP answer has
        ├── UnsupportedMediaType        415 unsupported_media_type    a body not declared as JSON
        ├── BodyTooLarge                413 request_entity_too_large  a body over MAX_BODY_BYTES
        ├── HeadersTooLarge             431 request_header_fields_too_large
        ├── Unauthorized                401 unauthorized              missing or wrong admin token
        ├── ManagementDisabled          403 management_disabled       no admin token configured
        ├── RouteNotFound               404 not_found                 no such path
        ├── MethodNotAllowed            405 method_not_allowed        the path, not with this method
        └── InternalError               500 internal_error            a bug; logged with its trace
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from ml_matching.contract import (
    ArtifactCorrupt,
    ExperimentNotFound,
    FileNotInVersion,
    HoldoutNotFound,
    InvalidInput,
    MLMatchingError,
    ModelNotReady,
    StorageFull,
    VersionNotFound,
)


class ErrorBody(msgspec.Struct, rename="camel", omit_defaults=True):
    """Every error answer: HTTP status, the stable code, a message naming the field and the reason.

    ``check`` is set on ``artifact_corrupt`` only: the verification step that failed.
    """

    status_code: int
    error: str
    detail: str
    check: str | None = None


class HttpError(MLMatchingError):
    """An error that exists only as an HTTP answer; it carries its status."""

    status_code: ClassVar[int] = 500

    @property
    def headers(self) -> dict[str, str] | None:
        """HTTP headers the answer carries besides the body."""
        return None


class UnsupportedMediaType(HttpError, InvalidInput):
    """A request body that is not declared as JSON."""

    code = "unsupported_media_type"
    status_code = 415
    when = "a body not sent as Content-Type: application/json"
    example = "expected a JSON body (Content-Type: application/json), got `text/plain`"


class BodyTooLarge(HttpError, ValueError):
    """A request body over the configured limit."""

    code = "request_entity_too_large"
    status_code = 413
    when = "a body over MAX_BODY_BYTES (the detail states the limit)"
    example = "request body is larger than MAX_BODY_BYTES (10305536 bytes)"


class HeadersTooLarge(HttpError, ValueError):
    """Request headers over the configured limit."""

    code = "request_header_fields_too_large"
    status_code = 431
    when = "request headers over MAX_HEADER_BYTES (the detail states the limit)"
    example = "request headers are 204800 bytes, more than MAX_HEADER_BYTES (16384)"


class Unauthorized(HttpError):
    """Missing or wrong bearer token on an admin endpoint."""

    code = "unauthorized"
    status_code = 401
    when = "an admin call without the right Authorization: Bearer token"
    example = "missing or wrong bearer token (Authorization: Bearer <ML_SERVICE_ADMIN_TOKEN>)"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class ManagementDisabled(HttpError):
    """No admin token is configured, so the admin endpoints are off."""

    code = "management_disabled"
    status_code = 403
    when = "an admin call while no admin token is configured"
    example = "model management is disabled: set ML_SERVICE_ADMIN_TOKEN to enable it"


class RouteNotFound(HttpError, LookupError):
    """No route matches the path."""

    code = "not_found"
    status_code = 404
    when = "a path the API does not have"
    example = "no route for GET /predictions"


class MethodNotAllowed(HttpError):
    """The path exists but not with this method."""

    code = "method_not_allowed"
    status_code = 405
    when = "a path called with a method it does not take"
    example = "GET is not allowed on /predict (allowed: POST)"

    def __init__(self, message: str, allowed: str = "") -> None:
        super().__init__(message)
        self.allowed = allowed

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Allow": self.allowed} if self.allowed else None


class InternalError(HttpError, RuntimeError):
    """An unexpected failure inside the service."""

    code = "internal_error"
    status_code = 500


Statuses = Mapping[type[MLMatchingError], int]

#: The status each of the contract's errors is answered with; each app adds its room's errors.
STATUSES: Statuses = {
    InvalidInput: 400,
    VersionNotFound: 404,
    FileNotInVersion: 404,
    ExperimentNotFound: 404,
    HoldoutNotFound: 404,
    ArtifactCorrupt: 422,
    ModelNotReady: 503,
    StorageFull: 507,
}


def status_of(error: type[MLMatchingError], statuses: Statuses = STATUSES) -> int | None:
    """The status ``error`` is answered with: its own for an :class:`HttpError`, else the first
    class along its MRO that ``statuses`` names (None: never an answer, e.g. a settings error)."""
    if issubclass(error, HttpError):
        return error.status_code
    for cls in error.__mro__:
        if cls in statuses:
            return statuses[cls]
    return None


def error_body(error: MLMatchingError, status: int) -> ErrorBody:
    """The JSON body ``error`` is answered with."""
    check = error.check if isinstance(error, ArtifactCorrupt) else None
    return ErrorBody(status_code=status, error=error.code, detail=str(error), check=check)


def error_headers(error: MLMatchingError) -> dict[str, str] | None:
    return error.headers if isinstance(error, HttpError) else None
