"""Exceptions raised by the runtime.

Exception tree::

    MLMatchingError                    root of everything this package raises
    ├── InvalidInput (ValueError)      a request or data file the caller must fix (HTTP 400)
    │   └── UnsupportedMediaType       body that is not JSON (HTTP 415)
    ├── ModelNotReady (RuntimeError)   no verified model is loaded (HTTP 503)
    ├── VersionNotFound (LookupError)  no such version in the store (HTTP 404)
    ├── ArtifactCorrupt (ValueError)   a version failed verification (HTTP 422)
    └── SettingsError (ValueError)     a bad environment variable; stops start-up

A body over MAX_BODY_BYTES is refused by Litestar itself (HTTP 413) before any handler runs.
"""

from __future__ import annotations


class MLMatchingError(Exception):
    """Root of every error ml-matching raises on purpose."""

    status_code = 500


class InvalidInput(MLMatchingError, ValueError):
    """Input the caller must fix; the message names the field and the reason."""

    status_code = 400


class UnsupportedMediaType(InvalidInput):
    """A request body that is not declared as JSON."""

    status_code = 415


class ModelNotReady(MLMatchingError, RuntimeError):
    """Scoring was asked for while no verified model is loaded."""

    status_code = 503


class VersionNotFound(MLMatchingError, LookupError):
    """The artifact store has no such version."""

    status_code = 404


class ArtifactCorrupt(MLMatchingError, ValueError):
    """A version folder failed a check; ``check`` names which one."""

    status_code = 422

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


class SettingsError(MLMatchingError, ValueError):
    """A bad setting; the message names the environment variable."""
