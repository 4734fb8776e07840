"""Every error the runtime raises on purpose, with its stable public ``code`` and HTTP status.

Exception tree (with each one's HTTP status and code)::

    MLMatchingError                     everything ml-matching raises on purpose
    ├── InvalidInput (ValueError)       400 invalid_input             input the caller must fix
    │   └── UnsupportedMediaType        415 unsupported_media_type    a body not declared as JSON
    ├── BodyTooLarge (ValueError)       413 request_entity_too_large  a body over MAX_BODY_BYTES
    ├── Unauthorized                    401 unauthorized              missing or wrong admin token
    ├── ManagementDisabled              403 management_disabled       no admin token configured
    ├── VersionNotFound (LookupError)   404 version_not_found         no such version in the store
    ├── FileNotInVersion (LookupError)  404 file_not_found            a version has no such file
    ├── RouteNotFound (LookupError)     404 not_found                 no such path
    ├── ModelNotFound (LookupError)     404 model_not_found           a v2 model name other than MODEL_NAME
    ├── VersionNotLoaded                409 version_not_loaded        v2 inference on a version not served
    ├── NotExplainable                  409 explanation_unavailable   explain=true, no explainer graph
    ├── MethodNotAllowed                405 method_not_allowed        the path, not with this method
    ├── HeadersTooLarge (ValueError)    431 request_header_fields_too_large   headers over MAX_HEADER_BYTES
    ├── ArtifactCorrupt (ValueError)    422 artifact_corrupt          a version failed verification
    ├── StoreWriteError (OSError)       507 store_write_failed        the store could not be written
    ├── ModelNotReady (RuntimeError)    503 model_not_ready           no verified model is loaded
    ├── InternalError (RuntimeError)    500 internal_error            a bug; logged with its trace
    └── SettingsError (ValueError)        - invalid_settings          a bad environment variable

``code`` is part of the API: clients (the Node client among them) branch on it, so it is written
out here rather than derived from the class name. ``python scripts/gen_schemas.py`` writes this
table to ``schemas/errors.json``; the README's table and the Node client are checked against it.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec


class ErrorBody(msgspec.Struct, rename="camel", omit_defaults=True):
    """Every error answer: HTTP status, the stable code, a message naming the field and the reason.

    ``check`` is set on ``artifact_corrupt`` only: the verification step that failed.
    """

    status_code: int
    error: str
    detail: str
    check: str | None = None


class MLMatchingError(Exception):
    """Root of every error ml-matching raises on purpose."""

    code: ClassVar[str] = "internal_error"
    status_code: ClassVar[int] = 500
    #: When the API answers with this error (documentation, and ``schemas/errors.json``).
    when: ClassVar[str] = "a bug in the service; the log has the stack trace"
    #: A detail it may carry, for the API documentation.
    example: ClassVar[str] = "internal error (logged by the service)"

    @property
    def headers(self) -> dict[str, str] | None:
        """HTTP headers the answer carries besides the body."""
        return None

    def body(self) -> ErrorBody:
        """The JSON body the API answers this error with."""
        return ErrorBody(status_code=self.status_code, error=self.code, detail=str(self))


class InvalidInput(MLMatchingError, ValueError):
    """Input the caller must fix; the message names the field and the reason."""

    code = "invalid_input"
    status_code = 400
    when = (
        "a body, field or value the caller must fix "
        "(missing, unknown, wrong type, not finite, out of range, too many rows)"
    )
    example = "missing features `brandFit`, `budgetAlignment` (expected 19 features, got 17)"


class UnsupportedMediaType(InvalidInput):
    """A request body that is not declared as JSON."""

    code = "unsupported_media_type"
    status_code = 415
    when = "a body not sent as Content-Type: application/json"
    example = "expected a JSON body (Content-Type: application/json), got `text/plain`"


class BodyTooLarge(MLMatchingError, ValueError):
    """A request body over the configured limit."""

    code = "request_entity_too_large"
    status_code = 413
    when = "a body over MAX_BODY_BYTES (the detail states the limit)"
    example = "request body is larger than MAX_BODY_BYTES (10305536 bytes)"


class Unauthorized(MLMatchingError):
    """Missing or wrong bearer token on an admin endpoint."""

    code = "unauthorized"
    status_code = 401
    when = "an admin call without the right Authorization: Bearer token"
    example = "missing or wrong bearer token (Authorization: Bearer <ML_SERVICE_ADMIN_TOKEN>)"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class ManagementDisabled(MLMatchingError):
    """No admin token is configured, so the admin endpoints are off."""

    code = "management_disabled"
    status_code = 403
    when = "an admin call while no admin token is configured"
    example = "model management is disabled: set ML_SERVICE_ADMIN_TOKEN to enable it"


class VersionNotFound(MLMatchingError, LookupError):
    """The artifact store has no such version."""

    code = "version_not_found"
    status_code = 404
    when = "a well-formed version name the store does not hold"
    example = "version 20260101_000000 not found in artifacts"


class FileNotInVersion(MLMatchingError, LookupError):
    """A version has no file of that name."""

    code = "file_not_found"
    status_code = 404
    when = "a file name a version does not list"
    example = "version 20260101_000000 has no file `card.md` (it has model.json, model.onnx)"


class RouteNotFound(MLMatchingError, LookupError):
    """No route matches the path."""

    code = "not_found"
    status_code = 404
    when = "a path the API does not have"
    example = "no route for GET /predictions"


class ModelNotFound(MLMatchingError, LookupError):
    """An Open Inference Protocol path names a model this service does not serve."""

    code = "model_not_found"
    status_code = 404
    when = "a /v2/models/{name} path with a name other than MODEL_NAME"
    example = "no model `resnet` here: this service serves `ml-matching` (MODEL_NAME)"


class VersionNotLoaded(MLMatchingError):
    """Open Inference Protocol inference on a version the store holds but this service does not serve."""

    code = "version_not_loaded"
    status_code = 409
    when = "v2 inference on a stored version other than the one served (load it first)"
    example = (
        "version 20260102_000000 is in the store but not loaded: this service serves 20260101_000000 "
        "(POST /models/20260102_000000/load serves it)"
    )


class NotExplainable(MLMatchingError):
    """Explanations were asked of a version that has no explainer graph."""

    code = "explanation_unavailable"
    status_code = 409
    when = "explain=true while the served version has no explainer (trained before explanations existed)"
    example = (
        "version 20260101_000000 has no explainer (it was trained before explanations existed): "
        "retrain it, or score without explain=true"
    )


class MethodNotAllowed(MLMatchingError):
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


class ArtifactCorrupt(MLMatchingError, ValueError):
    """A version folder failed a check; ``check`` names which one."""

    code = "artifact_corrupt"
    status_code = 422
    when = "a version that fails verification on load (`check` names the step); the old model keeps serving"
    example = "golden-rows: golden row 3: expected p=0.81234567, onnxruntime gives 0.80000000"

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check

    def body(self) -> ErrorBody:
        return ErrorBody(status_code=self.status_code, error=self.code, detail=str(self), check=self.check)


class StoreWriteError(MLMatchingError, OSError):
    """The artifact store could not be written (disk full, read-only); nothing half-written is left."""

    code = "store_write_failed"
    status_code = 507
    when = (
        "a version or ACTIVE could not be written (disk full, read-only store); nothing half-written is left"
    )
    example = "artifacts: cannot write version 20261126_143000: No space left on device"


class HeadersTooLarge(MLMatchingError, ValueError):
    """Request headers over the configured limit."""

    code = "request_header_fields_too_large"
    status_code = 431
    when = "request headers over MAX_HEADER_BYTES (the detail states the limit)"
    example = "request headers are 204800 bytes, more than MAX_HEADER_BYTES (16384)"


class ModelNotReady(MLMatchingError, RuntimeError):
    """Scoring was asked for while no verified model is loaded."""

    code = "model_not_ready"
    status_code = 503
    when = "scoring or readiness while no verified model is loaded (the detail says how to train one)"
    example = "no model is loaded: train one with `python -m training fit ...`"


class InternalError(MLMatchingError, RuntimeError):
    """An unexpected failure inside the service."""


class ClientGone(MLMatchingError, ConnectionError):
    """The client disconnected before its request was read: nobody reads the answer."""

    code = "client_disconnected"
    status_code = 499  # nginx's code for it; no client sees this answer
    when = "the client went away mid-request (logged as one info line; nobody receives this)"
    example = "the client disconnected before sending its whole body"


class SettingsError(MLMatchingError, ValueError):
    """A bad setting; the message names the environment variable."""

    code = "invalid_settings"
    status_code = 0  # never an HTTP answer: start-up stops
    when = "a bad environment variable at start-up (exit code 2, the message names it)"


#: Every error class of the HTTP API, in the order of the README's table.
HTTP_ERRORS: tuple[type[MLMatchingError], ...] = (
    InvalidInput,
    Unauthorized,
    ManagementDisabled,
    VersionNotFound,
    FileNotInVersion,
    RouteNotFound,
    ModelNotFound,
    VersionNotLoaded,
    NotExplainable,
    MethodNotAllowed,
    BodyTooLarge,
    UnsupportedMediaType,
    HeadersTooLarge,
    ArtifactCorrupt,
    InternalError,
    ModelNotReady,
)
