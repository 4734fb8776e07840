"""ml-matching runtime: serve ONNX match-success models with onnxruntime (no scikit-learn).

- :mod:`runtime.artifact` — the artifact contract (feature sets, sidecar, store, verification);
- :mod:`runtime.errors` — every error, with its stable code and HTTP status;
- :class:`Scorer` — strict decoding and scoring of requests for one loaded model;
- :mod:`runtime.web` — the HTTP service (``create_app``), imported only when serving.
"""

from __future__ import annotations

from runtime.errors import (
    ArtifactCorrupt,
    BodyTooLarge,
    ErrorBody,
    FileNotInVersion,
    InvalidInput,
    ManagementDisabled,
    MLMatchingError,
    ModelNotReady,
    SettingsError,
    Unauthorized,
    UnsupportedMediaType,
    VersionNotFound,
)
from runtime.scoring import Scorer, batch_type, row_type
from runtime.settings import EnvReader, Settings
from runtime.validation import kind, malformed, row_problem

__all__ = [
    "ArtifactCorrupt",
    "BodyTooLarge",
    "EnvReader",
    "ErrorBody",
    "FileNotInVersion",
    "InvalidInput",
    "MLMatchingError",
    "ManagementDisabled",
    "ModelNotReady",
    "Scorer",
    "Settings",
    "SettingsError",
    "Unauthorized",
    "UnsupportedMediaType",
    "VersionNotFound",
    "batch_type",
    "kind",
    "malformed",
    "row_problem",
    "row_type",
]
