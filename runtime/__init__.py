"""ml-matching runtime: serve ONNX match-success models with onnxruntime (no scikit-learn).

``create_app`` is imported on first use, so ``import runtime`` (e.g. by training, for the artifact
layout) does not load the web framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.errors import (
    ArtifactCorrupt,
    InvalidInput,
    MLMatchingError,
    ModelNotReady,
    SettingsError,
    UnsupportedMediaType,
    VersionNotFound,
)
from runtime.features import Feature, FeatureSet, default_feature_set, load_feature_set
from runtime.model import LoadedModel, load_dir, load_version
from runtime.scoring import Scorer
from runtime.settings import Settings

if TYPE_CHECKING:
    from runtime.app import create_app

__all__ = [
    "ArtifactCorrupt",
    "Feature",
    "FeatureSet",
    "InvalidInput",
    "LoadedModel",
    "MLMatchingError",
    "ModelNotReady",
    "Scorer",
    "Settings",
    "SettingsError",
    "UnsupportedMediaType",
    "VersionNotFound",
    "create_app",
    "default_feature_set",
    "load_dir",
    "load_feature_set",
    "load_version",
]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from runtime.app import create_app

        return create_app
    raise AttributeError(name)
