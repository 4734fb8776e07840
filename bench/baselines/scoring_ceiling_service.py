"""The framework ceiling that scores: ``ceiling_service.py`` plus the one job no scoring service avoids.

The constant-answer ceiling never imports onnxruntime or walks a forest, so two of issue 17's goals
measured against it are out of reach for any service that scores: its RSS (43 MB here) is less than
Python with Litestar, msgspec and uvicorn and then onnxruntime and NumPy imported in one process
(36 + 32 = 68 MB) before a model is loaded, and its p50 at one connection has no forest walk in it
(14 µs of a 107 µs p50 for the default RandomForest at one row). This service is that ceiling with
the walk added and nothing else: the same Litestar app (``ceiling_app.py``) and validation, then
one onnxruntime session of the served version's ``model.onnx`` (the runtime's session options: both
walk the forest the same way) scoring the decoded row, and the answer of the seed's shape encoded
per request. No sidecar checks, no sha256, no calibration, no metrics: a lower bound on what
serving this model with Litestar costs, which the runtime's ratios to it put in proportion.

Bench-only. Environment: ``SCORING_MODEL`` (a version folder: ``model.json`` and ``model.onnx``),
``BENCH_HOST``, ``BENCH_PORT``. Run: ``python bench/baselines/scoring_ceiling_service.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from bench_server import serve
from ceiling_app import make_app
from ceiling_parts import FEATURE_NAMES

from ml_matching.contract.sessions import new_session
from ml_matching.contract.sidecar import decode_sidecar

FOLDER = Path(os.environ["SCORING_MODEL"])
ONNX = decode_sidecar((FOLDER / "model.json").read_bytes()).onnx
SESSION = new_session((FOLDER / ONNX.file).read_bytes(), 1, "onnx", ONNX.file)  # the runtime's own
IMPORTANCE = {name: 1.0 / len(FEATURE_NAMES) for name in FEATURE_NAMES}
ENCODE = msgspec.json.Encoder().encode


def score(row: Any) -> bytes:
    """The row's answer: its positive-class probability from the session, in the seed's shape."""
    x = np.array([msgspec.structs.astuple(row)], dtype=np.float32)
    (proba,) = SESSION.run([ONNX.probabilities_output], {ONNX.input_name: x})
    p = float(proba[0, ONNX.positive_class_index])
    answer = {"score": 100.0 * p, "confidence": 100.0 * abs(2.0 * p - 1.0), "successProbability": 100.0 * p,
              "featureImportance": IMPORTANCE, "modelVersion": FOLDER.name}  # fmt: skip
    return ENCODE(answer)


app = make_app("scoring-ceiling", score)


if __name__ == "__main__":
    serve(app)
