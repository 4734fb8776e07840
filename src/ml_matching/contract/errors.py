"""The domain's errors: what went wrong, with a stable public ``code``, and no HTTP status.

Exception tree (each with its code)::

    MLMatchingError                     everything ml-matching raises on purpose   internal_error
    ├── InvalidInput (ValueError)       input the caller must fix                  invalid_input
    ├── VersionNotFound (LookupError)   no such version in the store               version_not_found
    ├── FileNotInVersion (LookupError)  a version has no such file                 file_not_found
    ├── ArtifactCorrupt (ValueError)    a version failed verification              artifact_corrupt
    ├── StorageFull (OSError)           the store or database could not be written insufficient_storage
    ├── ModelNotReady (RuntimeError)    no verified model is loaded                model_not_ready
    ├── MissingDependency (ImportError) an extra is not installed                   missing_dependency
    └── SettingsError (ValueError)      a bad environment variable                 invalid_settings

The rooms add their own (``training.errors``, ``trainer.errors``, ``runtime.errors``), and the
errors only an HTTP answer carries live in :mod:`ml_matching.http.errors`, which also says which
status answers each of these: the domain names what happened, the service decides how to answer,
as litestar's ``base_exceptions`` and ``http_exceptions`` divide the work.

``code`` is part of the API: clients (the Node client among them) branch on it, so it is written
out here rather than derived from the class name.
"""

from __future__ import annotations

from typing import ClassVar


class MLMatchingError(Exception):
    """Root of every error ml-matching raises on purpose."""

    code: ClassVar[str] = "internal_error"
    #: When it happens (documentation, and the generated error tables).
    when: ClassVar[str] = "a bug in the service; the log has the stack trace"
    #: A message it may carry, for the API documentation.
    example: ClassVar[str] = "internal error (logged by the service)"


class InvalidInput(MLMatchingError, ValueError):
    """Input the caller must fix; the message names the field and the reason."""

    code = "invalid_input"
    when = (
        "a body, field or value the caller must fix "
        "(missing, unknown, wrong type, not finite, out of range, too many rows)"
    )
    example = "missing features `brandFit`, `budgetAlignment` (expected 19 features, got 17)"


class VersionNotFound(MLMatchingError, LookupError):
    """The artifact store has no such version."""

    code = "version_not_found"
    when = "a well-formed version name the store does not hold"
    example = "version 20260101_000000 not found in artifacts"


class FileNotInVersion(MLMatchingError, LookupError):
    """A version has no file of that name."""

    code = "file_not_found"
    when = "a file name a version does not list"
    example = "version 20260101_000000 has no file `card.md` (it has model.json, model.onnx)"


class ExperimentNotFound(MLMatchingError, LookupError):
    """No experiment of that id (the trainer), or none followed (a runtime's ``GET /experiment``)."""

    code = "experiment_not_found"
    when = "an experiment id the trainer does not hold, or GET /experiment while none is followed"
    example = "experiment exp-20260101-000000-1a2b not found (GET /experiments lists them)"


class HoldoutNotFound(MLMatchingError, LookupError):
    """No holdout of that id (the trainer), or none followed (a runtime's ``GET /holdout``)."""

    code = "holdout_not_found"
    when = "a holdout id the trainer does not hold, or GET /holdout while none is followed"
    example = "no holdout `holdout-20260101-000000-1a2b` (GET /holdouts lists them)"


class ArtifactCorrupt(MLMatchingError, ValueError):
    """A version folder failed a check; ``check`` names which one."""

    code = "artifact_corrupt"
    when = "a version that fails verification on load (`check` names the step); the old model keeps serving"
    example = "golden-rows: golden row 3: expected p=0.81234567, onnxruntime gives 0.80000000"

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.detail = message  # what failed, without the check's name

    def __reduce__(self) -> tuple[type[ArtifactCorrupt], tuple[str, str]]:
        # Rebuilt from both arguments: a worker process (Dask, joblib) that raises it can send it back.
        return type(self), (self.check, self.detail)


class StorageFull(MLMatchingError, OSError):
    """The artifact store or the outcome database could not be written (disk full, read-only).

    Nothing half-written is left: a version is renamed into place whole, a transaction rolls back.
    """

    code = "insufficient_storage"
    when = (
        "the artifact store or the outcome database could not be written (disk full, read-only); "
        "nothing half-written is left and nothing of the request was stored"
    )
    example = "artifacts: cannot write version 20261126_143000: No space left on device"


class ModelNotReady(MLMatchingError, RuntimeError):
    """Scoring was asked for while no verified model is loaded."""

    code = "model_not_ready"
    when = "scoring or readiness while no verified model is loaded (the detail says why, or how to train one)"
    example = "no model is loaded: train one with `ml-matching fit ...`"


class MissingDependency(MLMatchingError, ImportError):
    """An optional part of ml-matching was used without its extra; the message names the install command."""

    code = "missing_dependency"
    when = "a command that needs an extra (training: `train`) in an install without it (exit code 2)"
    example = "training needs the `train` extra (sklearn is missing): `pip install 'ml-matching[train]'`"


class SettingsError(MLMatchingError, ValueError):
    """A bad setting; the message names the environment variable."""

    code = "invalid_settings"
    when = "a bad environment variable at start-up (exit code 2, the message names it)"
