"""The seed's design, kept as a reference point for the benchmarks: FastAPI + pydantic + a pickled forest.

What the original service did on ``POST /predict``: pydantic validates the 19 floats (0 ≤ x ≤ 1), the
handler builds a NumPy row and calls the scikit-learn RandomForest's ``predict_proba`` with the
forest's ``n_jobs=-1`` as trained, and FastAPI serialises a dict. The forest is the same one the
runtime serves as ONNX (``bench/seed_model.py`` refits it and checks it against the golden rows).

Two deliberate kindnesses to the seed, so that the comparison does not flatter the runtime:

- the global feature importances are computed once at start-up, not per request;
- the handler is a plain ``def``, which FastAPI runs in its thread pool, so requests overlap the
  ~20 ms of joblib thread start-up that ``n_jobs=-1`` costs per call. That measured about 30 % more
  requests/s at 16 connections than an ``async def`` handler calling ``predict_proba`` in the event
  loop (the seed's write-up says only "async support"); ``SEED_HANDLER=async`` selects that variant.

Bench-only (FastAPI and pydantic are not dependencies of ml-matching); never imported by the runtime.

Environment: ``SEED_MODEL`` (the ``.joblib`` file; its ``.json`` metadata beside it), ``SEED_HANDLER``
(``sync``, the default, or ``async``), ``BENCH_HOST``, ``BENCH_PORT``.
Run: ``python bench/baselines/seed_service.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from bench_server import serve
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

FEATURE_NAMES = [
    "nicheAlignment", "audienceMatch", "engagementRate", "brandFit", "locationMatch",
    "budgetAlignment", "contentQuality", "responseRate", "accountAge", "activityScore",
    "lastActiveScore", "connectionAcceptance", "profileCompletion", "portfolioQuality",
    "networkStrength", "mutualConnections", "connectionDiversity", "postingConsistency",
    "contentEngagement",
]  # fmt: skip


class MatchFeatures(BaseModel):
    """The seed's request model: 19 floats in [0, 1]."""

    nicheAlignment: float = Field(..., ge=0, le=1)  # noqa: N815 (the seed's wire names)
    audienceMatch: float = Field(..., ge=0, le=1)  # noqa: N815
    engagementRate: float = Field(..., ge=0, le=1)  # noqa: N815
    brandFit: float = Field(..., ge=0, le=1)  # noqa: N815
    locationMatch: float = Field(..., ge=0, le=1)  # noqa: N815
    budgetAlignment: float = Field(..., ge=0, le=1)  # noqa: N815
    contentQuality: float = Field(..., ge=0, le=1)  # noqa: N815
    responseRate: float = Field(..., ge=0, le=1)  # noqa: N815
    accountAge: float = Field(..., ge=0, le=1)  # noqa: N815
    activityScore: float = Field(..., ge=0, le=1)  # noqa: N815
    lastActiveScore: float = Field(..., ge=0, le=1)  # noqa: N815
    connectionAcceptance: float = Field(..., ge=0, le=1)  # noqa: N815
    profileCompletion: float = Field(..., ge=0, le=1)  # noqa: N815
    portfolioQuality: float = Field(..., ge=0, le=1)  # noqa: N815
    networkStrength: float = Field(..., ge=0, le=1)  # noqa: N815
    mutualConnections: float = Field(..., ge=0, le=1)  # noqa: N815
    connectionDiversity: float = Field(..., ge=0, le=1)  # noqa: N815
    postingConsistency: float = Field(..., ge=0, le=1)  # noqa: N815
    contentEngagement: float = Field(..., ge=0, le=1)  # noqa: N815


class MatchPredictor:
    """The seed's predictor: a joblib-loaded RandomForest."""

    def __init__(self, path: Path) -> None:
        meta = json.loads(path.with_suffix(".json").read_text())
        if meta["features"] != FEATURE_NAMES:
            raise RuntimeError(f"{path} was trained on columns {meta['features']}, expected {FEATURE_NAMES}")
        self.model = joblib.load(path)
        self.version: str = meta["version"]
        self.importance = dict(zip(FEATURE_NAMES, map(float, self.model.feature_importances_), strict=True))

    def predict(self, features: dict[str, float]) -> dict[str, Any]:
        x = np.array([[features[name] for name in FEATURE_NAMES]])
        p = float(self.model.predict_proba(x)[0][1])
        return {
            "score": round(p * 100, 2),
            "confidence": round(abs(2 * p - 1) * 100, 2),
            "successProbability": round(p * 100, 2),
            "featureImportance": self.importance,
            "modelVersion": self.version,
        }


predictor: MatchPredictor | None = None
HANDLER = os.environ.get("SEED_HANDLER", "sync")
if HANDLER not in ("sync", "async"):
    raise SystemExit(f"SEED_HANDLER={HANDLER!r}: expected sync or async")


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    global predictor
    predictor = MatchPredictor(Path(os.environ["SEED_MODEL"]))
    yield


app = FastAPI(title="ml-matching seed design (bench reference)", lifespan=lifespan)


@app.get("/health/ready")
async def ready() -> dict[str, Any]:
    if predictor is None:
        raise HTTPException(status_code=503, detail="model not loaded")
    return {"status": "ready", "modelVersion": predictor.version, "handler": HANDLER}


def _predict(features: MatchFeatures) -> dict[str, Any]:
    if predictor is None:
        raise HTTPException(status_code=503, detail="model not loaded")
    return predictor.predict(features.model_dump())


if HANDLER == "async":

    @app.post("/predict")
    async def predict(features: MatchFeatures) -> dict[str, Any]:
        return _predict(features)

else:

    @app.post("/predict")
    def predict(features: MatchFeatures) -> dict[str, Any]:
        return _predict(features)


if __name__ == "__main__":
    serve(app)
