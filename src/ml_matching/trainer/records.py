"""What the trainer keeps and passes about a training job, as typed msgspec Structs.

- :class:`JobRecord`: a job as stored (state, progress lines, and its result or the reason it
  ended without one), saved as JSON at every change;
- the worker's messages to the service, a tagged union sent as JSON bytes over the pipe (the
  pattern of msgspec's ``examples/asyncio-kv``): :class:`Progress` lines, then one of
  :class:`Published`, :class:`Rejected` or :class:`Failed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from ml_matching.contract import GateDecision

JobState = Literal["queued", "running", "succeeded", "rejected", "failed"]
FINAL_STATES: tuple[JobState, ...] = ("succeeded", "rejected", "failed")


class TrainMetrics(msgspec.Struct, frozen=True):
    """The original service's /train metrics: held-out accuracy, precision, recall, F1; CV accuracy
    mean and std."""

    accuracy: float
    precision: float
    recall: float
    f1_score: float
    cv_score: float
    cv_std: float


class TrainResult(msgspec.Struct, rename="camel", frozen=True):
    """A published version: its metrics, the rows it learned from, and the gate's decision."""

    metrics: TrainMetrics
    samples: int
    model_version: str
    timestamp: str
    promoted: bool
    decision: GateDecision | None = None


class Progress(msgspec.Struct, tag="progress", frozen=True):
    line: str


class Published(msgspec.Struct, tag="published", frozen=True):
    result: TrainResult


class Rejected(msgspec.Struct, tag="rejected", frozen=True):
    """The data cannot be trained on (the reason names it)."""

    reason: str


class Failed(msgspec.Struct, tag="failed", frozen=True):
    """The job broke: the store could not be written, a bug (with its trace)."""

    reason: str


WorkerMessage = Progress | Published | Rejected | Failed
Final = Published | Rejected | Failed


class JobRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """A training job as kept: its state, what it trains on, its progress lines and its result.

    ``kind``: ``auto`` (every RETRAIN_EVERY outcomes) or ``manual`` (POST /train); ``source``:
    ``stored`` (the stored outcomes) or ``body`` (the data POST /train sent); ``owner``: the
    instance number of the trainer that runs it on a shared database (kept, never shown).
    """

    id: str
    kind: str
    source: str
    state: JobState
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    progress: tuple[str, ...] = ()
    result: TrainResult | None = None
    reason: str | None = None
    owner: int | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def ended(job: JobRecord, message: Final, at: str) -> JobRecord:
    """``job`` in the final state ``message`` puts it in."""
    if isinstance(message, Published):
        return msgspec.structs.replace(job, state="succeeded", finished_at=at, result=message.result)
    state: JobState = "rejected" if isinstance(message, Rejected) else "failed"
    return msgspec.structs.replace(job, state=state, finished_at=at, reason=message.reason)


_encode = msgspec.json.Encoder().encode
_message = msgspec.json.Decoder(WorkerMessage)
_record = msgspec.json.Decoder(JobRecord)


def encode(value: WorkerMessage | JobRecord) -> bytes:
    return _encode(value)


def decode_message(data: bytes) -> WorkerMessage:
    return _message.decode(data)


def decode_record(data: bytes | str) -> JobRecord:
    return _record.decode(data)


@dataclass(frozen=True)
class JobSpec:
    """What a job trains on and how; plain data, so it crosses the process boundary as is."""

    job_id: str
    root: str
    db: str
    features: list[dict[str, Any]]
    algorithm: str
    tolerance: float
    min_evaluation_rows: int
    config: str | None = None
    snapshot: int | None = None  # stored outcomes up to this sequence number
    body: bytes | None = None  # or exactly the data POST /train sent
    activate: bool = True  # PROMOTION=gate: a promoted version becomes ACTIVE; else the trainer decides
    dask: str | None = None  # a Dask scheduler to train on (DASK_SCHEDULER_ADDRESS)
