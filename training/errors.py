"""Training's errors: all are :class:`runtime.errors.InvalidInput` or subclasses of the root."""

from __future__ import annotations

from runtime.errors import InvalidInput, MLMatchingError


class DataError(InvalidInput):
    """The outcomes file cannot be trained on; the message names the file, row or column."""


class ParityError(MLMatchingError, ValueError):
    """onnxruntime disagrees with scikit-learn beyond the tolerance; nothing is published."""
