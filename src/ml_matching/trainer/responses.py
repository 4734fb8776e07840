"""The trainer's answers, as Structs (the OpenAPI document and the JSON Schemas are made from them)."""

from __future__ import annotations

from typing import Literal

import msgspec

from runtime.artifact import GateDecision


class _Camel(msgspec.Struct, rename="camel", omit_defaults=True):
    pass


class TrainerHealth(_Camel):
    """``GET /health``: liveness, the version ACTIVE names, the jobs in progress, the outcomes kept."""

    status: str
    service: str
    timestamp: str
    active_version: str | None
    outcomes: int
    running_job: str | None = None
    waiting_job: str | None = None


class TrainerReady(_Camel):
    status: str


class OutcomesStored(_Camel):
    """``POST /outcomes``: how many were stored (a retried id is a duplicate, stored once), the totals."""

    stored: int
    duplicates: int
    total: int
    untrained: int
    ids: list[str]
    job: str | None = None


class OutcomeStats(_Camel):
    """``GET /outcomes/stats``."""

    total: int
    positives: int
    untrained: int
    evaluation: int
    first_at: str | None
    last_at: str | None
    retrain_every: int
    next_retrain_in: int | None


class TrainMetrics(msgspec.Struct):
    """The seed's /train metrics: held-out accuracy, precision, recall, F1; CV accuracy mean and std."""

    accuracy: float
    precision: float
    recall: float
    f1_score: float
    cv_score: float
    cv_std: float


class TrainAnswer(_Camel):
    """A finished training: the seed's answer (``status``, ``metrics``, ``samples``, ``modelVersion``,
    ``timestamp``), whether the version was promoted and why; or why it was rejected or failed."""

    status: Literal["success", "rejected", "failed"]
    job: str
    metrics: TrainMetrics | None = None
    samples: int | None = None
    model_version: str | None = None
    timestamp: str | None = None
    promoted: bool | None = None
    decision: GateDecision | None = None
    reason: str | None = None


class JobView(_Camel):
    """``GET /train/{job}``: a training job, its progress lines and, once finished, its answer."""

    job: str
    state: Literal["queued", "running", "succeeded", "rejected", "failed"]
    kind: str
    source: str
    created_at: str
    progress: list[str]
    started_at: str | None = None
    finished_at: str | None = None
    result: TrainAnswer | None = None
