"""The trainer's own errors, and the status table its answers use.

Exception tree (the root is :mod:`ml_matching.contract.errors`')::

    MLMatchingError
    ├── OutcomeConflict                 outcome_conflict   an outcome id reused for other content
    ├── TrainingBusy                    training_busy      a training already waits
    └── JobNotFound (LookupError)       job_not_found      no such training job
"""

from __future__ import annotations

from ml_matching.contract import InvalidInput, MLMatchingError, StorageFull
from ml_matching.http.errors import (
    STATUSES,
    BodyTooLarge,
    ManagementDisabled,
    Statuses,
    Unauthorized,
    UnsupportedMediaType,
)
from ml_matching.training.errors import DataError


class OutcomeConflict(MLMatchingError):
    """An outcome id already stored with other features or another outcome."""

    code = "outcome_conflict"
    when = (
        "an outcome id already stored with other features or another outcome (a retry must resend the same)"
    )
    example = "outcome `c-1042` is already stored with other features or another outcome"


class TrainingBusy(MLMatchingError):
    """A job already waits for its turn: another one cannot queue."""

    code = "training_busy"
    when = "POST /train with a body while another training already waits for its turn"
    example = "a training (5f0c2d9e1a7b4c33) already waits for its turn behind 0d1e2f3a4b5c6d7e"


class JobNotFound(MLMatchingError, LookupError):
    """No training job has that id."""

    code = "job_not_found"
    when = "a training job id the trainer does not know"
    example = "no training job `5f0c2d9e1a7b4c33`"


#: The statuses of the trainer's answers: the contract's, and the trainer's own errors.
TRAINER_STATUSES: Statuses = {**STATUSES, OutcomeConflict: 409, TrainingBusy: 409, JobNotFound: 404}

#: Every error code the trainer service answers with, in the order of the error reference.
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
