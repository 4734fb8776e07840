"""The trainer's answers, as Structs (the OpenAPI document and the JSON Schemas are made from them)."""

from __future__ import annotations

from typing import Literal

import msgspec

from ml_matching.contract import GateDecision
from ml_matching.trainer.records import JobRecord, JobState, TrainMetrics


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
    pending: int  # outcomes by prediction id whose prediction has not reached the trainer yet
    job: str | None = None


class PredictionsStored(_Camel):
    """``POST /predictions``: ledger rows stored (a resent id is a duplicate, stored once), and the
    waiting outcomes they joined."""

    stored: int
    duplicates: int
    joined: int
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


class TrainAnswer(_Camel):
    """A finished training: the original service's answer (``status``, ``metrics``, ``samples``,
    ``modelVersion``, ``timestamp``), whether the version was promoted and why; or why it was rejected
    or failed."""

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
    state: JobState
    kind: str
    source: str
    created_at: str
    progress: list[str]
    started_at: str | None = None
    finished_at: str | None = None
    result: TrainAnswer | None = None


def train_answer(job: JobRecord) -> TrainAnswer | None:
    """A finished job as ``POST /train`` answers it (None while it is not finished)."""
    if job.result is not None:
        r = job.result
        return TrainAnswer(
            "success", job.id, r.metrics, r.samples, r.model_version, r.timestamp, r.promoted, r.decision
        )
    if job.state in ("rejected", "failed"):
        return TrainAnswer(job.state, job.id, reason=job.reason)
    return None


def job_view(job: JobRecord) -> JobView:
    """A job record as ``GET /train/{job}`` answers it."""
    return JobView(
        job=job.id,
        state=job.state,
        kind=job.kind,
        source=job.source,
        created_at=job.created_at,
        progress=list(job.progress),
        started_at=job.started_at,
        finished_at=job.finished_at,
        result=train_answer(job),
    )
