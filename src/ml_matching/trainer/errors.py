"""The trainer's own errors, and the status table its answers use.

Exception tree (the root is :mod:`ml_matching.contract.errors`')::

    MLMatchingError
    ├── OutcomeConflict                 outcome_conflict     an outcome id reused for other content
    ├── PredictionConflict              prediction_conflict  a prediction id reused for other content
    ├── ExperimentConflict              experiment_conflict  a change the experiments' states forbid
    ├── TrainingBusy                    training_busy        a training already waits
    └── JobNotFound (LookupError)       job_not_found        no such training job
"""

from __future__ import annotations

from ml_matching.contract import (
    ArtifactCorrupt,
    ExperimentNotFound,
    HoldoutNotFound,
    InvalidInput,
    MLMatchingError,
    StorageFull,
    VersionNotFound,
)
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


class PredictionConflict(MLMatchingError):
    """A ledger row whose prediction id is already stored with other content."""

    code = "prediction_conflict"
    when = "POST /predictions with a prediction id already stored with other content"
    example = "prediction `0192f3a4-…` is already stored with other content; a resend must send the same row"


class ExperimentConflict(MLMatchingError):
    """An experiment change the store's state forbids."""

    code = "experiment_conflict"
    when = (
        "a new experiment while another is running or paused; pause, resume or stop from a state that "
        "does not allow it; removing a version an experiment uses"
    )
    example = "experiment exp-20260101-000000-1a2b is running: stop it before starting another"


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
TRAINER_STATUSES: Statuses = {
    **STATUSES,
    OutcomeConflict: 409,
    PredictionConflict: 409,
    ExperimentConflict: 409,
    TrainingBusy: 409,
    JobNotFound: 404,
}

#: Every error code the trainer service answers with, in the order of the error reference.
TRAINER_ERRORS: tuple[type[MLMatchingError], ...] = (
    InvalidInput,
    DataError,
    Unauthorized,
    ManagementDisabled,
    JobNotFound,
    ExperimentNotFound,
    HoldoutNotFound,
    VersionNotFound,
    ArtifactCorrupt,
    OutcomeConflict,
    PredictionConflict,
    ExperimentConflict,
    TrainingBusy,
    BodyTooLarge,
    UnsupportedMediaType,
    StorageFull,
)
