"""The runtime's own errors, and the status table its answers use.

``NotExplainable`` is the scorer's (a version without an explainer); the two Open Inference
Protocol errors exist only as answers to a ``/v2`` path, so they carry their status.
"""

from __future__ import annotations

from ml_matching.contract import (
    ArtifactCorrupt,
    ExperimentNotFound,
    FileNotInVersion,
    HoldoutNotFound,
    InvalidInput,
    MLMatchingError,
    ModelNotReady,
    SettingsError,
    VersionNotFound,
)
from ml_matching.http.errors import (
    STATUSES,
    BodyTooLarge,
    HeadersTooLarge,
    HttpError,
    InternalError,
    ManagementDisabled,
    MethodNotAllowed,
    RouteNotFound,
    Statuses,
    Unauthorized,
    UnsupportedMediaType,
)


class NotExplainable(MLMatchingError):
    """Explanations were asked of a version that has no explainer graph."""

    code = "explanation_unavailable"
    when = "explain=true while the served version has no explainer (trained before explanations existed)"
    example = (
        "version 20260101_000000 has no explainer (it was trained before explanations existed): "
        "retrain it, or score without explain=true"
    )


class ModelNotFound(HttpError, LookupError):
    """An Open Inference Protocol path names a model this service does not serve."""

    code = "model_not_found"
    status_code = 404
    when = "a /v2/models/{name} path with a name other than MODEL_NAME"
    example = "no model `resnet` here: this service serves `ml-matching` (MODEL_NAME)"


class VersionNotLoaded(HttpError):
    """Open Inference Protocol inference on a version the store holds but this service does not serve."""

    code = "version_not_loaded"
    status_code = 409
    when = "v2 inference on a stored version other than the one served (load it first)"
    example = (
        "version 20260102_000000 is in the store but not loaded: this service serves 20260101_000000 "
        "(POST /models/20260102_000000/load serves it)"
    )


#: The statuses of the runtime's answers: the contract's, and the scorer's own error.
RUNTIME_STATUSES: Statuses = {**STATUSES, NotExplainable: 409}

#: Every error code of the runtime's API, in the order of the error reference, and the one that
#: stops start-up.
RUNTIME_ERRORS: tuple[type[MLMatchingError], ...] = (
    InvalidInput,
    Unauthorized,
    ManagementDisabled,
    VersionNotFound,
    FileNotInVersion,
    ExperimentNotFound,
    HoldoutNotFound,
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
    SettingsError,
)
