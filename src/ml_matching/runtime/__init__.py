"""The runtime: serve ONNX match-success models with onnxruntime (no scikit-learn, ever).

- :func:`create_app` — the Litestar service (``ml-matching serve``);
- :class:`ModelService` — the served version and the verified hot swap; :class:`ActiveWatch` follows
  the store's ``ACTIVE``;
- :class:`Scorer` — strict decoding and scoring of requests for one loaded version;
- :class:`Settings` — what the service reads from its environment.

It imports the contract and the HTTP kit, never training, scikit-learn, skl2onnx or joblib.
"""

from __future__ import annotations

from ml_matching.runtime.app import create_app
from ml_matching.runtime.errors import ModelNotFound, NotExplainable, VersionNotLoaded
from ml_matching.runtime.scoring import Scorer
from ml_matching.runtime.service import ModelService
from ml_matching.runtime.settings import Settings
from ml_matching.runtime.watch import ActiveWatch

__all__ = [
    "ActiveWatch",
    "ModelNotFound",
    "ModelService",
    "NotExplainable",
    "Scorer",
    "Settings",
    "VersionNotLoaded",
    "create_app",
]
