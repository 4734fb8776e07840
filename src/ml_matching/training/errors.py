"""Every error training raises on purpose; each has a stable ``code`` like the runtime's errors.

Exception tree (the root and ``InvalidInput`` are :mod:`runtime.errors`')::

    MLMatchingError
    ├── InvalidInput                          400 invalid_input
    │   └── DataError                         400 invalid_data          outcomes that cannot be trained on
    ├── ParityError (ValueError)              422 parity_failed         ONNX disagrees with scikit-learn
    ├── OutcomeConflict                       409 outcome_conflict      an outcome id reused for other content
    ├── TrainingBusy                          409 training_busy         a training already waits
    ├── JobNotFound (LookupError)             404 job_not_found         no such training job
    └── StorageFull                           507 insufficient_storage  the outcome database's disk is full

The command line exits with 2 on an ``InvalidInput`` and 1 on any other of these. The trainer
service answers with the runtime's error body; :data:`TRAINER_ERRORS` is its table of codes.
"""

from __future__ import annotations

from runtime import (
    BodyTooLarge,
    InvalidInput,
    ManagementDisabled,
    MLMatchingError,
    Unauthorized,
    UnsupportedMediaType,
)


class DataError(InvalidInput):
    """The outcomes cannot be trained on; the message names the file, row or column."""

    code = "invalid_data"
    when = "outcomes that cannot be trained on (too few rows, one class, a bad value; the detail names it)"
    example = "request body: 42 rows; training needs at least 50"


class ParityError(MLMatchingError, ValueError):
    """onnxruntime disagrees with scikit-learn beyond the tolerance; nothing is published."""

    code = "parity_failed"
    status_code = 422
    when = "an exported model that onnxruntime scores differently from scikit-learn; nothing is published"
    example = "ONNX export differs from scikit-learn on row 3: p_sklearn=0.81234567, p_onnx=0.81200000"


class OutcomeConflict(MLMatchingError):
    """An outcome id already stored with other features or another outcome."""

    code = "outcome_conflict"
    status_code = 409
    when = (
        "an outcome id already stored with other features or another outcome (a retry must resend the same)"
    )
    example = "outcome `c-1042` is already stored with other features or another outcome"


class StorageFull(MLMatchingError):
    """The outcome database cannot grow: nothing of the request was stored."""

    code = "insufficient_storage"
    status_code = 507
    when = "the outcome database's disk is full; nothing of the request was stored"
    example = "artifacts/outcomes.sqlite: database or disk is full"


class TrainingBusy(MLMatchingError):
    """A job already waits for its turn: another one cannot queue."""

    code = "training_busy"
    status_code = 409
    when = "POST /train with a body while another training already waits for its turn"
    example = "a training (5f0c2d9e1a7b4c33) already waits for its turn behind 0d1e2f3a4b5c6d7e"


class JobNotFound(MLMatchingError, LookupError):
    code = "job_not_found"
    status_code = 404
    when = "a training job id the trainer does not know"
    example = "no training job `5f0c2d9e1a7b4c33`"


#: Every error code the trainer service answers with, in the order of the README's table.
TRAINER_ERRORS: tuple[type[MLMatchingError], ...] = (
    InvalidInput,
    DataError,
    Unauthorized,
    ManagementDisabled,
    JobNotFound,
    OutcomeConflict,
    TrainingBusy,
    BodyTooLarge,
    UnsupportedMediaType,
    StorageFull,
)
